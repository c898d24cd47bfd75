"""Each tutorial, as an experiment config, reproduces its notebook."""

from pathlib import Path

import pytest
import torch

from experiments.summary import format_result
from experiments.tables import builtin_table
from experiments.training import train
from helpers import read_scalars

TUTORIALS = [
    "tutorial_000_scratch",
    "tutorial_000_builtins",
    "tutorial_001_scratch",
    "tutorial_001_builtins",
    "tutorial_002",
    "tutorial_003",
]


@pytest.mark.parametrize("name", TUTORIALS)
def test_each_tutorial_runs_and_its_loss_falls(make_cfg, name):
    cfg = make_cfg(f"experiment={name}")
    summary = train(cfg)
    losses = [value for _, value in read_scalars(cfg.output_dir)["train/full_loss"]]
    assert summary["status"] == "ok" and summary["epochs"] == cfg.trainer.max_epochs
    assert losses[-1] < losses[0] / 10
    assert losses[-1] < losses[len(losses) // 2] < losses[0]


def test_tutorial_002_grows_mangoes_and_oranges_on_the_crops_numbers(make_cfg):
    cfg = make_cfg("experiment=tutorial_002", "trainer.max_epochs=1")
    summary = train(cfg)
    assert summary["target_names"] == ["mangoes", "oranges"]
    report = format_result(summary, Path(cfg.output_dir))
    assert "  mangoes = " in report and "  oranges = " in report and "apples" not in report
    mangoes, crops = builtin_table("crops_mangoes"), builtin_table("crops")
    assert mangoes.target_names == ["mangoes", "oranges"] and mangoes.feature_names == crops.feature_names
    assert torch.equal(mangoes.features, crops.features) and torch.equal(mangoes.targets, crops.targets)


def test_tutorial_003_reproduces_the_notebooks_numbers(make_cfg):
    # The notebook seeds 20, draws w = torch.randn(1), sets b = 0, prints the loss 104.9967, takes one
    # step by hand, then prints the loss before each of 10 more steps.
    cfg = make_cfg("experiment=tutorial_003")
    train(cfg)
    losses = [value for _, value in read_scalars(cfg.output_dir)["train/full_loss"]]
    assert losses[0] == pytest.approx(104.9967, abs=1e-4)
    printed = [
        2.1443493366241455,
        0.2407105565071106,
        0.20529970526695251,
        0.20446452498435974,
        0.204270139336586,
        0.20408859848976135,
        0.20390814542770386,
        0.20372863113880157,
        0.2035500854253769,
        0.20337240397930145,
    ]
    assert losses[1:11] == pytest.approx(printed, rel=1e-5)


def test_gd_matches_the_tutorials_hand_written_loop_step_for_step(make_cfg):
    """Tutorial 001's loop, verbatim but seeded, against experiment=tutorial_001_scratch."""
    cfg = make_cfg("experiment=tutorial_001_scratch", "trainer.max_epochs=20")
    summary = train(cfg)

    table = builtin_table("crops5")
    inputs, targets = table.features, table.targets
    torch.manual_seed(cfg.seed)
    w = torch.randn(2, 3, requires_grad=True)
    b = torch.randn(2, requires_grad=True)

    def mse(t1, t2):
        diff = t1 - t2
        return torch.sum(diff * diff) / diff.numel()

    expected = [mse(inputs @ w.t() + b, targets).item()]
    for _ in range(20):
        preds = inputs @ w.t() + b
        loss = mse(preds, targets)
        loss.backward()
        with torch.no_grad():
            w -= w.grad * 1e-5
            b -= b.grad * 1e-5
            w.grad.zero_()
            b.grad.zero_()
        expected.append(mse(inputs @ w.t() + b, targets).item())

    losses = [value for _, value in read_scalars(cfg.output_dir)["train/full_loss"]]
    assert losses == pytest.approx(expected, rel=1e-5)
    assert torch.allclose(torch.tensor(summary["weights"], dtype=torch.float32), w.detach(), rtol=1e-5)
    assert torch.allclose(torch.tensor(summary["bias"], dtype=torch.float32), b.detach(), rtol=1e-5)
