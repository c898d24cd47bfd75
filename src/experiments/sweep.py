"""The summary at the end of every multirun, as a Hydra callback (registered in conf/config.yaml).

Jobs may run in this process (the basic launcher), in worker processes (joblib) or on other
machines (submitit), so nothing is collected in memory: each job leaves its summary.json, a failed
job included, and this callback reads them all back from the sweep folder.
"""

import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from experiments.compare import load_runs, report


class SweepSummary(Callback):
    """Writes summary.csv, summary.md and loss_curves.png into the sweep folder, prints the table,
    and exits with status 1 when any job failed, so scripts and CI notice. Job folders left in the
    sweep folder by an earlier sweep (a reused `hydra.sweep.dir`) are not counted."""

    def __init__(self) -> None:
        self.started = 0.0

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = time.time()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.report(Path(config.hydra.sweep.dir)):
            sys.exit(1)

    def report(self, sweep_dir: Path) -> int:
        """Summarize the sweep in `sweep_dir`; returns how many of its jobs failed."""
        runs = [run for run in load_runs([sweep_dir]) if run.modified >= self.started] if sweep_dir.is_dir() else []
        if not runs:
            return 0
        print(f"\nSweep of {len(runs)} jobs, best first:")
        report(runs, sweep_dir)
        counts = {status: sum(run.summary.get("status") == status for run in runs)
                  for status in ("ok", "interrupted", "diverged", "failed")}
        print("\n" + ", ".join(f"{n} {status}" for status, n in counts.items() if n or status != "interrupted")
              + f". Table: {sweep_dir / 'summary.md'}  Curves: {sweep_dir / 'loss_curves.png'}\n"
              f"View it:  tensorboard --logdir {sweep_dir}")
        return counts["failed"]
