"""The ready experiments of issue "See gradient descent" run, with few epochs, and leave their pictures."""

import json
from pathlib import Path

import pytest

from helpers import run_cli

pytestmark = pytest.mark.slow


def _sweep(tmp_path: Path, *args: str) -> Path:
    sweep_dir = tmp_path / "sweep"
    result = run_cli(*args, f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    return sweep_dir


def _statuses(sweep_dir: Path) -> dict[int, str]:
    """Each job's status, by its number."""
    return {
        int(job.name.split("_")[0]): json.loads((job / "summary.json").read_text())["status"]
        for job in sweep_dir.iterdir()
        if job.is_dir()
    }


def test_lr_regimes_draws_the_learning_rate_curve_and_prints_the_stable_limit(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_cli(
        "experiment=lr_regimes",
        "trainer.max_epochs=20",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "stable for optim.lr < 0.000112" in result.stdout
    statuses = _statuses(sweep_dir)
    assert len(statuses) == 11 and set(statuses.values()) == {"ok", "diverged"}
    assert (sweep_dir / "lr_curve.png").stat().st_size > 10_000 and (sweep_dir / "trajectories.png").is_file()


def test_momentum_trains_its_grid_and_draws_each_jobs_path(tmp_path):
    sweep_dir = _sweep(tmp_path, "experiment=momentum", "trainer.max_epochs=30")
    statuses = _statuses(sweep_dir)
    assert len(statuses) == 16 and statuses[12] == "diverged"  # lr 2e-4, momentum 0
    assert statuses[14] == "ok"  # momentum 0.99 keeps lr 2e-4 stable
    for picture in ("trajectories.png", "lr_curve.png", "loss_curves.png"):
        assert (sweep_dir / picture).stat().st_size > 10_000


def test_conditioning_shows_whitening_and_newton_reaching_the_optimum_in_one_step(tmp_path):
    sweep_dir = _sweep(tmp_path, "experiment=conditioning", "trainer.max_epochs=1")
    ratios = {
        job.name.split("=", 1)[1].split(",")[0]: json.loads((job / "summary.json").read_text())["loss_ratio"]
        for job in sweep_dir.iterdir()
        if job.is_dir()
    }
    assert set(ratios) == {
        f"{design}_{optim}" for design in ("raw", "standardized", "whitened") for optim in ("gd", "newton")
    }
    for one_step in ("whitened_gd", "raw_newton", "standardized_newton", "whitened_newton"):
        assert ratios[one_step] == pytest.approx(1, abs=1e-9), one_step
    assert ratios["raw_gd"] > 100 and ratios["standardized_gd"] > 1.01  # gd needs many steps on these
    assert (sweep_dir / "trajectories.png").stat().st_size > 10_000
