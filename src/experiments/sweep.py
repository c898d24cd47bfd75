"""The summary at the end of every multirun, as a Hydra callback (registered in conf/config.yaml).

Jobs may run in this process (the basic launcher), in worker processes (joblib) or on other
machines (submitit), so nothing is collected in memory: each job leaves its summary.json, a failed
job included, and this callback reads them all back from the sweep folder.
"""

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from experiments.compare import load_runs, report


class SweepSummary(Callback):
    """Writes summary.csv, summary.md and loss_curves.png into the sweep folder, prints the table,
    and exits with status 1 when any job failed, so scripts and CI notice."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        runs = load_runs([sweep_dir]) if sweep_dir.is_dir() else []
        if not runs:
            return
        print(f"\nSweep of {len(runs)} jobs, best first:")
        report(runs, sweep_dir)
        counts = {status: sum(run.summary.get("status") == status for run in runs)
                  for status in ("ok", "diverged", "failed")}
        print(f"\n{counts['ok']} ok, {counts['diverged']} diverged, {counts['failed']} failed. "
              f"Table: {sweep_dir / 'summary.md'}  Curves: {sweep_dir / 'loss_curves.png'}\n"
              f"View it:  tensorboard --logdir {sweep_dir}")
        if counts["failed"]:
            sys.exit(1)
