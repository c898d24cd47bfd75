"""Multiruns: each job's failure policy, and the summary at the end as a Hydra callback
(registered in conf/config.yaml).

Jobs may run in this process (the basic launcher), in worker processes (joblib) or on other
machines (submitit), so nothing is collected in memory: each job leaves its summary.json, a failed
job included, and the callback reads them all back from the sweep folder.
"""

import json
import math
import shutil
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from hydra.utils import get_method
from omegaconf import DictConfig
from tqdm.auto import tqdm

from experiments.compare import write_comparison
from experiments.config import Values, check
from experiments.errors import UserError
from experiments.jobs import InvalidJob, Job
from experiments.runs import load_runs
from experiments.summary import format_result, objective, write_summary

if TYPE_CHECKING:
    from experiments.launcher import BatchedLauncher


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


def record_failure(cfg: Mapping[str, Any], run_dir: Path, error: Exception) -> None:
    """A failed job's summary.json (status failed, the error) and, for a bug rather than a user
    error, its traceback in error.txt. Reads the config defensively: it may be what failed."""
    first_line = next(iter(str(error).splitlines()), "")  # OmegaConf adds lines of detail; error.txt has them
    message = str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {first_line}"
    run_dir.mkdir(parents=True, exist_ok=True)
    if not isinstance(error, UserError):
        (run_dir / "error.txt").write_text("".join(traceback.format_exception(error)))
    settings = {}
    for name, key in (("lr", "optim.lr"), ("max_epochs", "trainer.max_epochs"), ("seed", "seed")):
        value: Any = cfg
        try:
            for part in key.split("."):
                value = value[part]
        except Exception:  # noqa: BLE001 - a missing or unresolvable value is just not recorded
            value = None
        settings[name] = value
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


def train_sweep(
    launcher: "BatchedLauncher", job_overrides: Sequence[Sequence[str]], initial_job_idx: int
) -> list[JobReturn]:
    """train.py's sweeps under the batched launcher: every job checked before any trains, the jobs
    that can train together trained as groups (`experiments.group`), the others one at a time."""
    from experiments.group import can_train_together, group_key, train_group

    jobs = launcher.compose(job_overrides, initial_job_idx, keep_config=lambda values: not can_train_together(values))
    refuse_invalid(jobs, Path(str(launcher.config.hydra.sweep.dir)))
    groups: dict[str, list[Job]] = {}
    alone: list[Job] = []
    for job in jobs:
        if can_train_together(job.values):
            groups.setdefault(group_key(job.values), []).append(job)
        else:
            alone.append(job)
    print(describe_plan(jobs, groups, alone), flush=True)
    epochs = sum(job.values["trainer"]["max_epochs"] for job in jobs)
    bar = tqdm(total=epochs, desc="Sweep", unit="epoch", dynamic_ncols=True, leave=False)
    returns: dict[int, JobReturn] = {}
    done = 0  # epochs of the groups trained so far, failed ones included
    for members in groups.values():
        done += sum(job.values["trainer"]["max_epochs"] for job in members)
        for job in members:
            launcher.job_started(job)
        try:
            results, interrupted = train_group(members, members[0].choices, bar.update)
        except Exception as error:  # noqa: BLE001 - one group's failure must not end the sweep
            for job in members:
                record_failure(Values(job.values), job.output_dir, error)
                returns[job.index] = launcher.job_ended(job, math.inf)
            bar.update(done - bar.n)
            continue
        for job in members:
            summary = results.get(job.index)
            if summary is not None:
                result = format_result(summary, job.output_dir, compact=True).strip()
                bar.write(f"#{job.index} {' '.join(job.overrides)}: {result}")
            returns[job.index] = launcher.job_ended(job, objective(summary) if summary else math.inf)
        bar.update(done - bar.n)
        if interrupted:
            bar.close()
            SweepSummary().summarize(Path(str(launcher.config.hydra.sweep.dir)))
            raise SystemExit(130)
    for job in alone:
        returns[job.index] = launcher.run_one(job)
        bar.update(job.values["trainer"]["max_epochs"])
    bar.close()
    return [returns[index] for index in sorted(returns)]


def describe_plan(jobs: list[Job], groups: dict[str, list[Job]], alone: list[Job]) -> str:
    """How a sweep will train, e.g. "9 jobs in 1 group of 3 trajectories"."""
    trajectories = sum(
        len({json.dumps([job.values["seed"], job.values["optim"]], sort_keys=True) for job in members})
        for members in groups.values()
    )
    parts = []
    if groups:
        together = sum(map(len, groups.values()))
        parts.append(f"{together} jobs in {len(groups)} group{'s' * (len(groups) > 1)} of {trajectories} trajectories")
    if alone:
        parts.append(f"{len(alone)} job{'s' * (len(alone) > 1)} one at a time")
    return f"Sweep of {len(jobs)} jobs: " + ", ".join(parts) + "."


def refuse_invalid(jobs: list["Job | InvalidJob"], sweep_dir: Path) -> None:
    """Check every job before any trains; if any is invalid, say which and why, one line each, and
    exit 2 with nothing written for the jobs."""
    from experiments.cli import type_error_line

    problems = []
    for job in jobs:
        if isinstance(job, InvalidJob):
            message = type_error_line(job.error) or next(iter(str(job.error).splitlines()), type(job.error).__name__)
        else:
            message = job_problem(job)
        if message:
            problems.append(f"  job {job.index} ({' '.join(job.overrides)}): {message}")
    if not problems:
        return
    if sweep_dir.is_dir() and [p.name for p in sweep_dir.iterdir()] == ["multirun.yaml"]:
        shutil.rmtree(sweep_dir)  # the sweep wrote nothing else
    print(
        f"Error: {len(problems)} of {len(jobs)} jobs of the sweep are invalid, so none was run:\n"
        + "\n".join(problems),
        file=sys.stderr,
    )
    sys.exit(2)


def job_problem(job: Job) -> str | None:
    """What is wrong with a composed job's settings, in one line; None if nothing."""
    values = Values(job.values)
    try:
        check(values, multirun=True)
        optim = values["optim"]
        if not optim.get("_partial_"):
            return None
        optimizer = get_method(optim["_target_"])
        import torch

        settings = {key: value for key, value in optim.items() if not key.startswith("_")}
        optimizer([torch.nn.Parameter(torch.zeros(1))], **settings)  # what it refuses (momentum=-1), it refuses here
    except UserError as error:
        return str(error)
    except (TypeError, ValueError, ImportError) as error:
        return f"optim: {error}"
    return None
