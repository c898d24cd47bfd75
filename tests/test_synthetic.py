"""data=synthetic: generated from the seed, with known true weights, at any size."""

import pytest
import torch
from hydra.errors import ConfigCompositionException

from experiments import datamodule as datamodule_module
from experiments import synthetic as synthetic_module
from experiments.cli import type_error_line
from experiments.errors import UserError
from experiments.least_squares import QRFactor, least_squares
from experiments.synthetic import Synthetic
from experiments.training import train
from helpers import read_scalars


def test_rows_come_from_the_seed_and_the_true_weights(monkeypatch):
    monkeypatch.setattr(synthetic_module, "BLOCK_ROWS", 300)  # several blocks
    recipe = Synthetic(n=1000, num_features=3, num_targets=2, noise=0.0, seed=1)
    table = recipe.on(torch.device("cpu"), torch.float32)
    weights, bias = recipe.true_weights()
    assert table.features.shape == (1000, 3) and table.targets.shape == (1000, 2)
    assert torch.allclose(table.targets.double(), table.features.double() @ weights.T + bias, atol=1e-5)
    assert torch.equal(table.features, recipe.on(torch.device("cpu"), torch.float32).features)
    assert not torch.equal(
        table.features, Synthetic(1000, 3, 2, 0.0, seed=2).on(torch.device("cpu"), torch.float32).features
    )
    # The same rows in float64, not other ones.
    assert torch.equal(recipe.on(torch.device("cpu"), torch.float64).features, table.features.double())


def test_least_squares_recovers_the_true_weights_and_the_noise_level():
    recipe = Synthetic(n=20000, num_features=4, num_targets=2, noise=0.5, seed=0)
    table = recipe.on(torch.device("cpu"), torch.float32)
    optimum = least_squares(QRFactor(table.features, table.targets))
    weights, bias = recipe.true_weights()
    assert torch.allclose(optimum.weights, weights, atol=0.02) and torch.allclose(optimum.bias, bias, atol=0.02)
    assert optimum.loss == pytest.approx(0.25, rel=0.05)  # noise^2


@pytest.mark.parametrize(
    "override,message",
    [
        ("data.n=0", "data.n must be a whole number of at least 1"),
        ("data.num_targets=0", "data.num_targets must be a whole number of at least 1"),
        ("data.noise=-1", "data.noise must be a number of at least 0"),
    ],
)
def test_bad_sizes_are_refused(make_cfg, override, message):
    with pytest.raises(UserError, match=message):
        train(make_cfg("data=synthetic", override))


def test_a_size_that_is_not_a_whole_number_is_refused_by_the_schema(make_cfg):
    with pytest.raises(ConfigCompositionException) as error:
        make_cfg("data=synthetic", "data.num_features=2.5")
    assert type_error_line(error.value) == "data.num_features must be a whole number; got 2.5."


def test_a_table_too_big_for_memory_is_refused_before_it_is_made(make_cfg, monkeypatch):
    monkeypatch.setattr(datamodule_module, "_available_ram", lambda: 2**30)
    with pytest.raises(UserError, match=r"needs about 1\.9 GiB .* 1\.0 GiB free; use a smaller data\.n"):
        train(make_cfg("data=synthetic", "data.n=4000000", "data.num_features=60", "data.num_targets=4"))


def test_training_on_it_approaches_the_true_weights_which_are_logged(make_cfg):
    cfg = make_cfg(
        "data=synthetic",
        "data.n=2000",
        "data.num_features=3",
        "data.num_targets=2",
        "optim.lr=0.1",
        "trainer.max_epochs=5",
    )
    summary = train(cfg)
    assert summary["status"] == "ok" and summary["loss_ratio"] < 1.1
    assert summary["rows"] == 2000 and summary["steps"] == 5 * 8 and summary["rows_per_second"] > 0
    assert torch.allclose(torch.tensor(summary["weights"]), torch.tensor(summary["true_weights"]), atol=0.05)
    scalars = read_scalars(cfg.output_dir)
    assert scalars["true/weights/y2/x3"] == [(0, pytest.approx(summary["true_weights"][1][2]))]
    assert scalars["true/weights/y1/bias"] == [(0, pytest.approx(summary["true_bias"][0]))]
