"""Multiruns: each job's failure policy, and the summary at the end as a Hydra callback
(registered in conf/config.yaml).

Jobs may run in this process (the basic launcher), in worker processes (joblib) or on other
machines (submitit), so nothing is collected in memory: each job leaves its summary.json, a failed
job included, and the callback reads them all back from the sweep folder.
"""

import math
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from experiments.compare import write_comparison
from experiments.errors import UserError
from experiments.runs import load_runs
from experiments.summary import objective, write_summary


def run_sweep_job(cfg: DictConfig) -> float:
    """Train one job of a multirun and return the number a sweeper such as Optuna minimizes: its
    final loss, or infinity if it diverged or failed. A job that fails, for whatever reason, is
    recorded as failed in its folder, and the sweep goes on."""
    from experiments.train import train

    try:
        summary = train(cfg)
    except Exception as error:  # noqa: BLE001 - one job's failure must not end the sweep
        record_failure(cfg, Path(cfg.output_dir), error)
        return math.inf
    except SystemExit:  # Ctrl-C: Hydra will not reach the end of the sweep, so summarize it here
        SweepSummary().summarize(Path(HydraConfig.get().sweep.dir))
        raise
    return objective(summary)


def record_failure(cfg: DictConfig, run_dir: Path, error: Exception) -> None:
    """A failed job's summary.json (status failed, the error) and, for a bug rather than a user
    error, its traceback in error.txt. Reads the config defensively: it may be what failed."""
    first_line = next(iter(str(error).splitlines()), "")  # OmegaConf adds lines of detail; error.txt has them
    message = str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {first_line}"
    run_dir.mkdir(parents=True, exist_ok=True)
    if not isinstance(error, UserError):
        (run_dir / "error.txt").write_text("".join(traceback.format_exception(error)))
    settings = {}
    for name, key in (("lr", "optim.lr"), ("max_epochs", "trainer.max_epochs"), ("seed", "seed")):
        try:
            settings[name] = OmegaConf.select(cfg, key, default=None)
        except Exception:  # noqa: BLE001 - an unresolvable value is just not recorded
            settings[name] = None
    write_summary(run_dir, {"status": "failed", "error": message, **settings})
    print(f"Job failed: {message}", file=sys.stderr, flush=True)


class SweepSummary(Callback):
    """Writes summary.csv, summary.md and loss_curves.png into the sweep folder, prints the table,
    and exits with status 1 when any job failed, so scripts and CI notice. Job folders left in the
    sweep folder by an earlier sweep (a reused `hydra.sweep.dir`) are not counted."""

    def __init__(self) -> None:
        self.started = 0.0

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = time.time()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.summarize(Path(config.hydra.sweep.dir)):
            sys.exit(1)

    def summarize(self, sweep_dir: Path) -> int:
        """Summarize the sweep in `sweep_dir`; returns how many of its jobs failed."""
        runs = [run for run in load_runs([sweep_dir]) if run.modified >= self.started] if sweep_dir.is_dir() else []
        if not runs:
            return 0
        print(f"\nSweep of {len(runs)} jobs, best first:")
        write_comparison(runs, sweep_dir)
        counts = {
            status: sum(run.summary.get("status") == status for run in runs)
            for status in ("ok", "interrupted", "diverged", "failed")
        }
        print(
            "\n"
            + ", ".join(f"{n} {status}" for status, n in counts.items() if n or status != "interrupted")
            + f". Table: {sweep_dir / 'summary.md'}  Curves: {sweep_dir / 'loss_curves.png'}\n"
            f"View it:  tensorboard --logdir {sweep_dir}"
        )
        return counts["failed"]
