"""The loss surface and the path on it: exact, from the R factor, and the same as the data says."""

import json
from pathlib import Path

import pytest
import torch

from experiments.comparison import write_comparison
from experiments.datamodule import RegressionDataModule
from experiments.landscape import WeightPath, landscape_record, surface
from experiments.runs import load_runs, read_landscape
from experiments.tables import builtin_table
from experiments.training import train
from helpers import read_scalars


def _setup(name: str, standardize: bool) -> RegressionDataModule:
    data = RegressionDataModule.from_builtin(name, standardize=standardize)
    data.setup("fit")
    return data


def _direct_loss(table_name: str, target: int, weights: torch.Tensor) -> float:
    """One target's mean squared error of `[w_1 ... w_f, b]`, computed from the rows themselves."""
    table = builtin_table(table_name)
    x, y = table.features.double(), table.targets[:, target].double()
    return ((x @ weights[:-1] + weights[-1] - y) ** 2).mean().item()


@pytest.mark.parametrize("name, standardize", [("toy", False), ("crops", False), ("crops", True)])
def test_the_surface_is_the_loss_the_data_gives_at_every_grid_point(name, standardize):
    data = _setup(name, standardize)
    plane = data.evaluator.plane()
    record = landscape_record(plane, [], torch.zeros(0, 2, 4), data.target_names, "epoch")  # landscape.json's
    generator = torch.Generator().manual_seed(0)
    for t, target_name in enumerate(data.target_names):
        target = record["targets"][target_name]
        for _ in range(5):
            a = plane.center[t] + torch.randn(2, generator=generator, dtype=torch.float64) * 3
            weights = plane.optimum[t] + plane.basis[t] @ (a - plane.center[t])
            exact = surface(target, a[0], a[1]).item()
            assert exact == pytest.approx(_direct_loss(name, t, weights), rel=1e-9)
        assert surface(target, *plane.center[t]).item() == pytest.approx(_direct_loss(name, t, plane.optimum[t]))


@pytest.mark.parametrize("standardize", [False, True])
def test_the_planes_directions_are_orthonormal_eigenvectors_of_the_hessian(standardize):
    data = _setup("crops", standardize)
    plane = data.evaluator.plane()
    directions = plane.directions
    torch.testing.assert_close(directions.T @ directions, torch.eye(2, dtype=torch.float64))
    table = builtin_table("crops")
    x = table.features.double()
    if standardize:
        x = data.scaler.scale_features(x)
    design = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], dim=1)
    hessian = 2 / table.targets.numel() * design.T @ design  # of F.mse_loss over the model's [w b] of one target
    eigenvalues = torch.linalg.eigvalsh(hessian)
    torch.testing.assert_close(plane.eigenvalues, eigenvalues[[-1, 0]], rtol=1e-9, atol=0)
    for k in range(2):
        torch.testing.assert_close(
            hessian @ directions[:, k], plane.eigenvalues[k] * directions[:, k], rtol=1e-8, atol=1e-12
        )
    # Projecting the plane's own points gives back their coordinates.
    a = torch.tensor([[0.3, -1.2], [2.0, 0.5]], dtype=torch.float64)
    weights = plane.optimum + (plane.basis @ (a - plane.center)[:, :, None])[:, :, 0]
    torch.testing.assert_close(plane.project(weights.flatten()), a)
    # Any model weights project orthogonally, in the model's coordinates, onto the directions.
    model = torch.randn(2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    scaler = data.scaler
    if scaler is not None:
        weight, bias = scaler.original_weights(model[:, :3], model[:, 3])
        data_units = torch.cat([weight, bias[:, None]], dim=1)
    else:
        data_units = model
    torch.testing.assert_close(plane.project_model(model), plane.project(data_units.flatten()))
    torch.testing.assert_close(plane.from_model, directions.T.expand(2, 2, 4))


def test_a_two_parameter_runs_path_passes_through_its_recorded_weights(make_cfg):
    cfg = make_cfg("experiment=tutorial_003", "trainer.max_epochs=6", "fit_picture=true")
    summary = train(cfg)
    run_dir = Path(cfg.output_dir)
    landscape = json.loads((run_dir / "landscape.json").read_text())
    assert landscape["axes"] == ["weight (x)", "bias"] and landscape["points"] == list(range(7))
    assert landscape["each"] == "epoch"  # full batch: a step is an epoch
    path = landscape["targets"]["y"]["path"]
    scalars = read_scalars(run_dir)
    logged = [value for pair in zip(scalars["weights/y/x"], scalars["weights/y/bias"]) for _, value in pair]
    assert [value for point in path for value in point] == pytest.approx(logged, rel=1e-6)
    assert path[-1] == pytest.approx([summary["weights"][0][0], summary["bias"][0]])
    assert landscape["targets"]["y"]["center"] == pytest.approx(
        [summary["optimal_weights"][0][0], summary["optimal_bias"][0]]
    )
    assert (run_dir / "landscape.png").stat().st_size > 10_000


def test_a_diverging_run_records_its_flight_and_still_draws(make_cfg):
    cfg = make_cfg("optim.lr=1e-2", "trainer.max_epochs=40", "fit_picture=true")
    summary = train(cfg)
    assert summary["status"] == "diverged"
    run_dir = Path(cfg.output_dir)
    landscape = read_landscape(run_dir)
    assert len(landscape["targets"]["apples"]["path"]) == summary["epochs"] + 1
    assert (run_dir / "landscape.png").is_file()


def test_a_long_path_keeps_ever_fewer_points_and_writes_at_most_a_thousand():
    path = WeightPath()
    for step in range(100_000):
        path.add(torch.full((1, 1), float(step)), torch.zeros(1))
    assert path.indices[:1000] == list(range(1000)) and len(path.indices) < 1000 + 500 * 7
    assert path.indices[1000:1003] == [1000, 1002, 1004]  # every second point after the first thousand
    state = path.state(torch.tensor([[99_999.0, 0.0]]))
    assert state["indices"][-1] == 99_999 and state["parameters"][-1, 0, 0] == 99_999
    assert all(state["parameters"][k, 0, 0] == index for k, index in enumerate(state["indices"]))
    plane = _setup("toy", standardize=False).evaluator.plane()
    record = landscape_record(plane, state["indices"], state["parameters"], ["y"], "step")
    points = record["points"]
    assert len(points) <= 1000 and points[0] == 0 and points[-1] == 99_999 and points == sorted(set(points))
    assert record["targets"]["y"]["path"][-1] == [99_999.0, 0.0]  # the weight and the bias themselves


def test_a_comparison_overlays_the_runs_paths_and_skips_a_damaged_landscape(make_cfg, tmp_path):
    folders = []
    for lr in ("1e-5", "1e-4"):
        cfg = make_cfg(f"optim.lr={lr}", "trainer.max_epochs=3")
        train(cfg)
        folders.append(Path(cfg.output_dir))
    (folders[1] / "landscape.json").write_text('{"axes": ["a"], "targets": 3}')
    assert read_landscape(folders[1]) is None and read_landscape(folders[0]) is not None
    write_comparison(load_runs(folders), tmp_path / "out", print_table=False)
    assert (tmp_path / "out" / "trajectories.png").stat().st_size > 10_000


def test_a_path_of_a_few_mini_batches_an_epoch_has_a_point_per_step(make_cfg):
    cfg = make_cfg("data.batch_size=5", "trainer.max_epochs=4", "data.standardize=true", "optim.lr=0.05")
    summary = train(cfg)
    landscape = read_landscape(Path(cfg.output_dir))
    assert landscape["each"] == "step" and landscape["points"] == list(range(summary["steps"] + 1)) == list(range(13))
    path = landscape["targets"]["apples"]["path"]
    checkpoint = torch.load(Path(cfg.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["callbacks"]["EpochRecorder"]["path"]["indices"] == list(range(13))
    assert len({tuple(point) for point in path}) == 13  # every step moved the weights
    plane = _setup("crops", standardize=True).evaluator.plane()
    final = [row + [b] for row, b in zip(summary["weights"], summary["bias"])]
    assert path[-1] == pytest.approx(plane.project(torch.tensor(final).flatten())[0].tolist(), rel=1e-5)
