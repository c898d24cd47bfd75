"""Conditioning: whitening, Newton's method and LBFGS reach the least-squares optimum to many digits,
on polynomial features (x ... x^5 of one variable) and on the crops."""

import json

import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from test_launcher import run_sweep

from experiments.config import CONFIG_DIR
from experiments.csv_table import read_csv
from experiments.datamodule import RegressionDataModule
from experiments.errors import UserError
from experiments.least_squares import QRFactor, least_squares
from experiments.predict import predict
from experiments.runs import load_trained_module
from experiments.tables import builtin_table
from experiments.training import train

POLYNOMIAL = ["data=csv", "data.path=polynomial.csv", "data.targets=[y]"]


@pytest.fixture
def polynomial(tmp_path, monkeypatch):
    """polynomial.csv in the working folder: x ... x^5 of x in [1, 2] and y = sin(3(x - 1)) + noise, a
    degree-5 fit whose standardized design has condition number about 1e5 (1e10 for the loss's Hessian)."""
    generator = torch.Generator().manual_seed(0)
    x = 1 + torch.rand(200, generator=generator, dtype=torch.float64)
    y = torch.sin(3 * (x - 1)) + 0.01 * torch.randn(200, generator=generator, dtype=torch.float64)
    rows = [",".join(f"{v:.17g}" for v in [*(x_i**k for k in range(1, 6)), y_i]) for x_i, y_i in zip(x, y)]
    (tmp_path / "polynomial.csv").write_text("x,x2,x3,x4,x5,y\n" + "\n".join(rows) + "\n")
    monkeypatch.chdir(tmp_path)
    return read_csv(str(tmp_path / "polynomial.csv"), ["y"])


@pytest.fixture
def crops():
    return builtin_table("crops")


def relative_error(summary: dict, table) -> float:
    """How far a run's weights and bias (in the data's units) are from the least-squares ones, computed
    here from the table in float64, relative to their size."""
    table = table.on(torch.device("cpu"), torch.float64)
    optimum = least_squares(QRFactor(table.features, table.targets))
    weights, bias = (torch.tensor(summary[key], dtype=torch.float64) for key in ("weights", "bias"))
    learned, best = (
        torch.cat([weights, bias[:, None]], dim=1),
        torch.cat([optimum.weights, optimum.bias[:, None]], dim=1),
    )
    return ((learned - best).norm() / best.norm()).item()


@pytest.mark.parametrize("data", ["polynomial", "crops"])
def test_whitened_gradient_descent_at_half_the_stable_rate_reaches_the_optimum_in_one_step(data, make_cfg, request):
    table = request.getfixturevalue(data)
    overrides = POLYNOMIAL if data == "polynomial" else []
    # The Hessian of the mean over rows and targets is 2/targets · I on a whitened design: lr = targets / 2.
    lr = table.targets.shape[1] / 2
    summary = train(
        make_cfg(
            *overrides, "data.whiten=true", "optim=gd", f"optim.lr={lr}", "trainer.precision=64", "trainer.max_epochs=1"
        )
    )
    assert summary["whiten"] is True and summary["max_stable_lr"] == pytest.approx(2 * lr)
    assert relative_error(summary, table) < 1e-8
    # At a quarter of the stable rate, one step goes only half way.
    slower = train(
        make_cfg(
            *overrides,
            "data.whiten=true",
            "optim=gd",
            f"optim.lr={lr / 2}",
            "trainer.precision=64",
            "trainer.max_epochs=1",
        )
    )
    assert relative_error(slower, table) > 1e-3


@pytest.mark.parametrize(
    "data, scaling",
    [
        ("polynomial", "data.standardize=true"),
        ("polynomial", "data.whiten=true"),
        ("crops", "data.standardize=false"),
        ("crops", "data.whiten=true"),
    ],
)
def test_newton_reaches_the_optimum_in_one_epoch(data, scaling, make_cfg, request):
    table = request.getfixturevalue(data)
    overrides = POLYNOMIAL if data == "polynomial" else []
    summary = train(make_cfg(*overrides, scaling, "optim=newton", "trainer.precision=64", "trainer.max_epochs=1"))
    assert summary["epochs"] == 1 and summary["steps"] == 1
    assert relative_error(summary, table) < 1e-8


def test_newton_with_mini_batches_steps_on_the_batches_gradient(make_cfg, crops):
    summary = train(
        make_cfg(
            "optim=newton",
            "optim.lr=0.2",
            "data.batch_size=5",
            "data.shuffle=true",
            "trainer.precision=64",
            "trainer.max_epochs=30",
        )
    )
    assert summary["steps"] == 90 and summary["status"] == "ok"
    assert summary["loss_ratio"] < 1.05  # the batches' noise keeps it near, not at, the optimum
    assert relative_error(summary, crops) > 1e-6


def test_the_newton_step_solves_with_the_exact_hessian_of_the_mean_squared_error(crops):
    """2 / numel · DᵀD for each target's [weights, bias], the targets apart: what autograd says."""
    datamodule = RegressionDataModule(crops.on(torch.device("cpu"), torch.float64), standardize=True)
    datamodule.setup("fit")
    design = torch.cat([datamodule.train_rows[:, :3], torch.ones(15, 1, dtype=torch.float64)], dim=1)
    targets = datamodule.train_rows[:, 3:]
    hessian = torch.autograd.functional.hessian(
        lambda theta: F.mse_loss(design @ theta.T, targets), torch.zeros(2, 4, dtype=torch.float64)
    )
    factor = datamodule.evaluator.hessian_factor()
    torch.testing.assert_close(hessian[0, :, 0, :], factor.T @ factor)
    torch.testing.assert_close(hessian[1, :, 1, :], factor.T @ factor)
    assert not hessian[0, :, 1, :].any()


def test_the_whitened_design_is_perfectly_conditioned(polynomial):
    raw, whitened = RegressionDataModule(polynomial), RegressionDataModule(polynomial, whiten=True)
    raw.setup("fit")
    whitened.setup("fit")
    assert raw.evaluator.optimum.condition > 1e5
    assert whitened.evaluator.optimum.condition == pytest.approx(1, abs=1e-6)
    # The rows it was fitted to (float32, without a trainer), whitened in float64: float32 would leave 1e5 * its eps.
    z = whitened.scaler.scale_features(polynomial.features.float().double())
    torch.testing.assert_close(z.T @ z / 200, torch.eye(5, dtype=torch.float64), atol=1e-9, rtol=0)
    torch.testing.assert_close(z.mean(dim=0), torch.zeros(5, dtype=torch.float64), atol=1e-9, rtol=0)


def test_a_whitened_run_predicts_in_the_datas_units(make_cfg, crops, capsys):
    cfg = make_cfg("data.whiten=true", "optim=newton", "trainer.precision=64", "trainer.max_epochs=1")
    summary = train(cfg)
    module, _, _ = load_trained_module(cfg.output_dir)
    assert module.scaler.feature_whitening is not None
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        predicted = predict(compose("predict", overrides=[f"run={cfg.output_dir}", "inputs=[[75,63,44],[0,0,0]]"]))
    x = torch.tensor([[75.0, 63.0, 44.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    by_weights = x @ torch.tensor(summary["weights"], dtype=torch.float64).T + torch.tensor(
        summary["bias"], dtype=torch.float64
    )
    torch.testing.assert_close(predicted, by_weights, rtol=1e-10, atol=1e-10)
    assert predicted[0].tolist() == pytest.approx([53.7956, 66.8065], abs=1e-4)  # the README's example


def test_lbfgs_in_float64_reaches_round_off_on_polynomial_features(make_cfg, polynomial):
    """torch's LBFGS alone stalls here at 1.012x the optimal loss, weights 77 % off: near the optimum
    every curvature pair falls below its yᵀs > 1e-10 threshold (experiments.optim.LBFGS)."""
    summary = train(
        make_cfg(*POLYNOMIAL, "data.standardize=true", "optim=lbfgs", "trainer.precision=64", "trainer.max_epochs=20")
    )
    assert summary["loss_ratio"] == pytest.approx(1, abs=1e-12)
    assert relative_error(summary, polynomial) < 1e-6


@pytest.mark.parametrize(
    "overrides, refusal",
    [
        (["data.whiten=true"], "data.whiten=true needs features that are linearly independent"),
        (["optim=newton"], "optim=newton needs features that are linearly independent"),
    ],
)
def test_dependent_features_are_refused_and_leave_no_run_folder(overrides, refusal, make_cfg, tmp_path, monkeypatch):
    (tmp_path / "twice.csv").write_text("a,b,c,y\n1,2,2,3\n2,4,4,1\n3,5,5,2\n4,1,1,0\n")  # c repeats b
    monkeypatch.chdir(tmp_path)
    cfg = make_cfg("data=csv", "data.path=twice.csv", "data.targets=[y]", *overrides)
    with pytest.raises(UserError, match=refusal):
        train(cfg)
    assert not any(path.name != ".hydra" for path in (tmp_path / cfg.output_dir).glob("*"))


def test_newton_jobs_of_a_sweep_train_one_by_one(hydra_sweep_runner, tmp_path, capsys):
    overrides = ["optim=newton", "optim.lr=1,0.5", "trainer.precision=64", "trainer.max_epochs=1"]
    sweep = run_sweep(hydra_sweep_runner, tmp_path, *overrides)
    with sweep:
        assert "2 one at a time." in capsys.readouterr().out
        summaries = [json.loads(path.read_text()) for path in tmp_path.glob("*/summary.json")]
        ratios = {summary["lr"]: summary["loss_ratio"] for summary in summaries}
    assert ratios[1.0] == pytest.approx(1, abs=1e-12)
    assert ratios[0.5] > 10  # half a Newton step leaves half the way to go
