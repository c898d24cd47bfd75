"""Long runs leave small logs: every epoch while that is cheap, then thinned out, the last always kept;
history.csv holds the same epochs, and is what compare.py reads."""

import math
from pathlib import Path

import pytest

from experiments import events
from experiments.config import compose_run
from experiments.logger import Thinning
from experiments.runs import read_history, read_loss_curve
from experiments.training import train
from helpers import read_scalars


@pytest.fixture
def small_thinning(monkeypatch):
    """Thinning at a hundredth of its scale: every epoch up to 10, then at most about 100 points."""
    monkeypatch.setattr(Thinning, "EVERY_EPOCH_UNTIL", 10)
    monkeypatch.setattr(Thinning, "MAX_POINTS", 100)


def test_a_curve_keeps_every_epoch_up_to_a_thousand_then_at_most_about_ten_thousand_points():
    assert all(Thinning(1000).keeps(epoch) for epoch in range(1001))
    for epochs in (5_000, 200_000, 1_000_000, 10**8):
        thinning = Thinning(epochs)
        if epochs <= 2_000_000:
            kept = sum(thinning.keeps(epoch) for epoch in range(epochs + 1))
            assert kept == epochs + 1 if epochs <= 10_000 else 9_000 < kept <= 10_001, epochs
        assert thinning.stride == max(1, math.ceil((epochs - 1000) / 9000))


def test_a_long_run_logs_each_epoch_then_every_few_and_always_its_last(make_cfg, small_thinning):
    cfg = make_cfg("data=toy", "trainer.max_epochs=1003", "fit_picture=false")
    summary = train(cfg)
    run_dir = Path(cfg.output_dir)
    stride = math.ceil((1003 - 10) / 90)
    expected = [*range(11), *range(stride * math.ceil(11 / stride), 1003, stride), 1003]
    scalars = read_scalars(run_dir)
    for tag in ("train/full_loss", "train/loss_ratio", "weights/y/x", "weights/y/bias"):
        assert [step for step, _ in scalars[tag] if step] == [step for step in expected if step], tag
    assert len(scalars["train/full_loss"]) <= 100 + 1
    history = read_history(run_dir).rows
    assert list(history) == expected
    assert history[1003]["train/full_loss"] == summary["final_loss"]  # the result, at full precision
    assert read_loss_curve(run_dir) == [(epoch, row["train/full_loss"]) for epoch, row in history.items()]


def test_a_run_that_diverges_between_kept_epochs_keeps_the_epoch_it_diverged_at(make_cfg, small_thinning):
    stable = train(make_cfg("data=toy", "trainer.max_epochs=1", "fit_picture=false"))["max_stable_lr"]
    cfg = make_cfg("data=toy", f"optim.lr={1.1 * stable}", "trainer.max_epochs=10000", "fit_picture=false")
    summary = train(cfg)  # a little too large a rate: the loss grows by a fifth each epoch
    diverged_at = summary["diverged_at_epoch"]
    assert summary["status"] == "diverged" and diverged_at > 10 and diverged_at % Thinning(10000).stride
    assert read_scalars(Path(cfg.output_dir))["train/full_loss"][-1][0] == diverged_at
    assert list(read_history(Path(cfg.output_dir)).rows)[-1] == diverged_at


def test_compare_reads_the_history_and_never_the_event_file(make_cfg, monkeypatch):
    cfg = make_cfg("data=toy", "trainer.max_epochs=5", "fit_picture=false")
    train(cfg)
    run_dir = Path(cfg.output_dir)
    expected = [(step, value) for step, value in read_scalars(run_dir)["train/full_loss"]]

    def unread(path, tag):
        raise AssertionError(f"read {path}")

    monkeypatch.setattr(events, "read_scalar_series", unread)
    curve = read_loss_curve(run_dir)
    assert [step for step, _ in curve] == [step for step, _ in expected]
    assert [value for _, value in curve] == pytest.approx([value for _, value in expected], rel=1e-6)


def test_a_run_made_before_history_csv_continues_with_its_whole_history(make_cfg):
    first = make_cfg("data=toy", "trainer.max_epochs=3", "fit_picture=false")
    train(first)
    run_dir = Path(first.output_dir)
    (run_dir / "history.csv").unlink()  # as a run made by an earlier version left it
    train(
        compose_run(
            ["accelerator=cpu", "data=toy", "fit_picture=false", "trainer.max_epochs=5", f"resume={run_dir}"], run_dir
        )
    )
    history = read_history(run_dir).rows
    assert list(history) == [0, 1, 2, 3, 4, 5]
    logged = read_scalars(run_dir)["train/full_loss"]
    assert [history[step]["train/full_loss"] for step, _ in logged] == pytest.approx([v for _, v in logged], rel=1e-6)
