"""Training to the optimum: standardization, Adam and LBFGS, float64, held-out rows."""

from pathlib import Path

import pytest
import torch

from experiments.least_squares import QRFactor, least_squares
from experiments.training import train
from helpers import read_scalars


def test_standardized_crops_reach_the_optimum_with_one_learning_rate(make_cfg):
    summary = train(make_cfg("data.standardize=true", "optim.lr=0.1", "trainer.max_epochs=400"))
    assert summary["status"] == "ok" and summary["standardize"] is True
    assert summary["loss_ratio"] <= 1.01
    # Reported in tons, not z-scores: the weights are the least-squares ones, to within 10 %.
    assert torch.allclose(torch.tensor(summary["weights"]), torch.tensor(summary["optimal_weights"]), rtol=0.1)


def test_lbfgs_in_float64_matches_lstsq_to_six_digits(make_cfg, tmp_path, monkeypatch):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, generator=generator, dtype=torch.float64) * torch.tensor([1.0, 10.0, 100.0]) + 50
    true_w = torch.tensor([[2.0, -0.5, 0.03], [1.0, 0.2, -0.01]], dtype=torch.float64)
    y = (
        x @ true_w.T
        + torch.tensor([3.0, -1.0], dtype=torch.float64)
        + 0.1 * torch.randn(40, 2, generator=generator, dtype=torch.float64)
    )
    lines = ["a,b,c,u,v"] + [",".join(f"{v:.10g}" for v in row) for row in torch.cat([x, y], 1).tolist()]
    (tmp_path / "table.csv").write_text("\n".join(lines) + "\n")
    monkeypatch.chdir(tmp_path)
    summary = train(
        make_cfg(
            "data=csv",
            "data.path=table.csv",
            "data.targets=[u,v]",
            "data.standardize=true",
            "optim=lbfgs",
            "trainer.precision=64",
            "trainer.max_epochs=20",
        )
    )
    table_x = torch.tensor([[float(v) for v in line.split(",")[:3]] for line in lines[1:]], dtype=torch.float64)
    table_y = torch.tensor([[float(v) for v in line.split(",")[3:]] for line in lines[1:]], dtype=torch.float64)
    design = torch.cat([table_x, torch.ones(40, 1, dtype=torch.float64)], 1)
    solution = torch.linalg.lstsq(design, table_y).solution
    assert torch.allclose(torch.tensor(summary["weights"], dtype=torch.float64), solution[:-1].T, rtol=1e-6, atol=0)
    assert torch.allclose(torch.tensor(summary["bias"], dtype=torch.float64), solution[-1], rtol=1e-6, atol=0)
    assert summary["loss_ratio"] == pytest.approx(1.0, abs=1e-9)


def test_adam_on_standardized_data_reaches_the_optimum(make_cfg):
    summary = train(make_cfg("data.standardize=true", "optim=adam", "optim.lr=0.1", "trainer.max_epochs=300"))
    assert summary["loss_ratio"] == pytest.approx(1.0, abs=1e-4)


def test_held_out_rows_are_measured_apart(make_cfg):
    cfg = make_cfg("data.val_fraction=0.2", "data.standardize=true", "optim.lr=0.1", "trainer.max_epochs=50")
    summary = train(cfg)
    scalars = read_scalars(cfg.output_dir)
    assert [step for step, _ in scalars["val/loss"]] == list(range(51))
    assert summary["val_loss"] == pytest.approx(scalars["val/loss"][-1][1])
    # The optimum and the final loss are those of the 12 training rows, not all 15.
    from experiments.tables import builtin_table

    crops = builtin_table("crops")
    assert summary["optimal_loss"] != pytest.approx(least_squares(QRFactor(crops.features, crops.targets)).loss)
    assert summary["steps"] == 50


def test_badly_conditioned_features_are_warned_about(make_cfg, tmp_path, monkeypatch, capsys):
    rows = [f"{i},{1000 + i * 1e-4},{2 * i}" for i in range(10)]
    (tmp_path / "bad.csv").write_text("a,b,y\n" + "\n".join(rows) + "\n")
    monkeypatch.chdir(tmp_path)
    train(make_cfg("data=csv", "data.path=bad.csv", "data.targets=[y]", "optim.lr=1e-9", "trainer.max_epochs=1"))
    assert "badly conditioned" in capsys.readouterr().err


def test_the_checkpoint_holds_plain_data_only(make_cfg):
    cfg = make_cfg("data.standardize=true", "trainer.max_epochs=2")
    train(cfg)
    checkpoint = torch.load(Path(cfg.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["RegressionDataModule"]["feature_names"] == ["temp", "rainfall", "humidity"]
    assert {"model.weight", "scaler.feature_mean", "scaler.target_std"} <= set(checkpoint["state_dict"])


def test_lbfgs_in_float64_gets_close_on_badly_conditioned_data(make_cfg, tmp_path, monkeypatch, capsys):
    generator = torch.Generator().manual_seed(1)
    a = torch.linspace(0, 100, 30, dtype=torch.float64)
    b = a + 1e-5 * torch.randn(30, generator=generator, dtype=torch.float64)  # almost the same column
    y = 3 * a - 2 * b + torch.randn(30, generator=generator, dtype=torch.float64)
    rows = "\n".join(f"{u:.17g},{v:.17g},{w:.17g}" for u, v, w in zip(a.tolist(), b.tolist(), y.tolist()))
    (tmp_path / "collinear.csv").write_text("a,b,y\n" + rows + "\n")
    monkeypatch.chdir(tmp_path)
    summary = train(
        make_cfg(
            "data=csv",
            "data.path=collinear.csv",
            "data.targets=[y]",
            "data.standardize=true",
            "optim=lbfgs",
            "trainer.precision=64",
            "trainer.max_epochs=50",
        )
    )
    assert "badly conditioned" in capsys.readouterr().err
    assert summary["loss_ratio"] < 1.0001


def test_the_stable_learning_rate_is_that_of_the_standardized_data(make_cfg):
    summary = train(make_cfg("data.standardize=true", "optim.lr=0.1", "trainer.max_epochs=1"))
    assert 0.1 < summary["max_stable_lr"] < 10  # z-scores: order 1, not the raw data's 1e-4


def test_a_validation_split_needs_two_rows(make_cfg, tmp_path, monkeypatch):
    from experiments.errors import UserError

    (tmp_path / "one.csv").write_text("x,y\n1,2\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="needs at least 2 rows"):
        train(make_cfg("data=csv", "data.path=one.csv", "data.targets=[y]", "data.val_fraction=0.5"))
