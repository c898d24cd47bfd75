"""Multiruns: train.py's sweeps under the batched launcher (every job checked, then trained in
groups), each job's failure policy, and the summary at the end as a Hydra callback (registered in
conf/config.yaml).

Jobs may run in this process (the batched and basic launchers), in worker processes (joblib) or on
other machines (submitit), so the summary collects nothing in memory: each job leaves its
summary.json, a failed job included, and the callback reads them all back from the sweep folder.
"""

import json
import math
import shutil
import sys
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from hydra.utils import get_method
from omegaconf import DictConfig
from tqdm.auto import tqdm

from experiments import stopping
from experiments.comparison import format_tables, group_by_data, which_data, write_comparison
from experiments.config import Values, check
from experiments.errors import Exit, UserError
from experiments.files import disk_trouble, is_disk_trouble, write_whole
from experiments.folders import remove_if_unused
from experiments.jobs import InvalidJob, Job
from experiments.naming import job_number
from experiments.resume import clear_attempt, resumable
from experiments.runs import Run, load_runs
from experiments.summary import format_result, objective, write_summary

if TYPE_CHECKING:
    from experiments.launcher import BatchedLauncher


def run_sweep_job(cfg: DictConfig) -> float:
    """Train one job of a multirun and return the number a sweeper such as Optuna minimizes: its
    final loss, or infinity if it diverged or failed. A job that fails, for whatever reason, is
    recorded as failed in its folder, and the sweep goes on; a signal or a disk in trouble stops it."""
    worker = stopping.in_worker()
    try:
        with stopping.whole():  # a signal waits for the import (see cli.train_task)
            from experiments.training import train

        summary = train(cfg)
    except Exception as error:  # one job's failure must not end the sweep (the disk's does)
        if is_disk_trouble(error):
            raise
        record_failure(cfg, Path(cfg.output_dir), error)
        stopping.moment("job_end")
        return math.inf
    except stopping.Stopped as stop:
        remove_if_unused(Path(cfg.output_dir))  # stopped before it trained: it did not run
        if worker:  # recorded: the main process, waiting for its workers to exit, summarizes the sweep
            stopping.end_stopped_worker_job(stop)
        raise
    finally:
        if worker:
            stopping.end_worker_job()
    stopping.moment("job_end")  # the job is recorded; the next has not started
    return objective(summary)


def record_failure(cfg: Mapping[str, Any], run_dir: Path, error: Exception) -> None:
    """A failed job's summary.json (status failed, the error) and, for a bug rather than a user
    error, its traceback in error.txt. Reads the config defensively: it may be what failed."""
    first_line = next(iter(str(error).splitlines()), "")  # OmegaConf adds lines of detail; error.txt has them
    message = str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {first_line}"
    run_dir.mkdir(parents=True, exist_ok=True)
    if not isinstance(error, UserError):
        write_whole(run_dir / "error.txt", "".join(traceback.format_exception(error)))
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
    and exits with status 1 when any job failed, so scripts and CI notice. A sweep stopped by a
    signal (or a disk in trouble) is summarized by `summarize_stopped`, which also names the jobs
    that did not run."""

    running: "SweepSummary | None" = None  # the sweep this process runs, until it ends
    last: "SweepSummary | None" = None  # the sweep this process ran last (the Python API returns its folder)
    planned: list[list[str]] = []  # the overrides of every job the sweep runs, where the sweeper says

    def __init__(self) -> None:
        self.sweep_dir: Path | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.sweep_dir = Path(config.hydra.sweep.dir)
        SweepSummary.running = SweepSummary.last = self

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            with stopping.whole():  # the sweep is done: a signal now waits for its summary
                failed = self.summarize(Path(config.hydra.sweep.dir))
                SweepSummary.running = None
        except OSError as error:  # Hydra would make a warning of it
            raise Exit(1, UserError(f"the sweep's summary could not be written: {disk_trouble(error)}")) from None
        if failed:
            raise Exit(1)

    def summarize_stopped(self) -> None:
        """Summarize what the stopped sweep finished, and name the jobs it did not run."""
        SweepSummary.running = None
        try:
            with stopping.whole():
                self.summarize(self.sweep_dir, stopped=True)
        except OSError as error:
            print(f"The sweep's summary could not be written: {disk_trouble(error)}", file=sys.stderr)
        except stopping.Stopped:  # another signal while summarizing: the command is ending anyway
            pass

    def summarize(self, sweep_dir: Path, stopped: bool = False) -> int:
        """Print the summary of the sweep in `sweep_dir`, then write its files; returns how many of
        its jobs failed."""
        runs = load_runs([sweep_dir]) if sweep_dir.is_dir() else []
        counts = {
            status: sum(run.summary.get("status") == status for run in runs)
            for status in ("ok", "interrupted", "diverged", "failed")
        }
        lines = [", ".join(f"{n} {status}" for status, n in counts.items() if n or status != "interrupted") + "."]
        if runs:
            data_sets = group_by_data(runs)
            print(f"\nSweep of {len(runs)} jobs on {which_data(data_sets)}, best first:\n{format_tables(data_sets)}")
            lines[0] += f" Table: {sweep_dir / 'summary.md'}  Curves: {sweep_dir / 'loss_curves.png'}"
            lines += stable_lr_lines(runs, sweep_dir)
            lines.append(f"View it:  tensorboard --logdir {sweep_dir}")
        if stopped:
            lines += self._not_run({run.path for run in runs})
            lines.append(f"Stopped. Continue it with:  python train.py resume={sweep_dir}")
        print("\n" + "\n".join(lines), flush=True)
        if runs:
            write_comparison(runs, sweep_dir, print_table=False)
        return counts["failed"]

    def _not_run(self, folders: set[Path]) -> list[str]:
        """A line naming the planned jobs that have no folder with a summary (the first ten)."""
        numbers = {job_number(folder) for folder in folders}
        missing = [(i, job) for i, job in enumerate(SweepSummary.planned) if i not in numbers]
        if not missing:
            return []
        named = "; ".join(f"#{i} {' '.join(job)}" for i, job in missing[:10])
        more = f"; and {len(missing) - 10} more" if len(missing) > 10 else ""
        return [f"{len(missing)} of the {len(SweepSummary.planned)} jobs did not run: {named}{more}."]


def stable_lr_lines(runs: list["Run"], sweep_dir: Path) -> list[str]:
    """For a sweep of learning rates on one data set: the largest stable one, and where the curve is."""
    from experiments.figures import varies_lr

    stable = {run.summary.get("max_stable_lr") for run in runs} - {None}
    if not varies_lr(runs) or len(stable) != 1:
        return []
    return [
        f"Full-batch gradient descent on this data is stable for optim.lr < {stable.pop():.3g}: "
        f"the dashed line in {sweep_dir / 'lr_curve.png'}"
    ]


def train_sweep(
    launcher: "BatchedLauncher", job_overrides: Sequence[Sequence[str]], initial_job_idx: int
) -> list[JobReturn]:
    """train.py's sweeps under the batched launcher: every job checked before any trains, the jobs
    that can train together trained as groups (`experiments.group`), the others one at a time.
    A signal stops the group being trained at the end of its epoch, its jobs recorded as interrupted.
    Resuming a sweep (`resume=SWEEP`), its interrupted jobs continue one at a time from their checkpoints."""
    with stopping.whole():  # a signal waits for the import (see cli.train_task)
        from experiments.group import can_train_together, group_key

    sweep_dir = Path(str(launcher.config.hydra.sweep.dir))
    resuming = launcher.config.get("resume") is not None

    def continues(values: dict[str, Any]) -> bool:  # an interrupted job of a resumed sweep
        return resuming and resumable(Path(values["output_dir"]))

    jobs = launcher.compose(
        job_overrides, initial_job_idx, keep_config=lambda values: not can_train_together(values) or continues(values)
    )
    refuse_invalid(jobs, sweep_dir)
    groups: dict[str, list[Job]] = {}
    alone: list[Job] = []
    for job in jobs:
        if can_train_together(job.values) and not continues(job.values):
            groups.setdefault(group_key(job.values), []).append(job)
        else:
            alone.append(job)
    print(describe_plan(jobs, groups, alone), flush=True)
    bar = tqdm(total=sum(job.values["trainer"]["max_epochs"] for job in jobs), desc="Sweep", unit="epoch", leave=False)
    returns: dict[int, JobReturn] = {}
    try:
        for group_jobs in groups.values():
            returns.update(_train_group(launcher, group_jobs, bar))
            stopping.moment("job_end")
        for job in alone:
            returns[job.index] = launcher.run_one(job)
            bar.update(job.values["trainer"]["max_epochs"])
    except KeyboardInterrupt:  # a signal: what has finished is summarized by the command line
        for job in jobs:  # those stopped before their first epoch
            remove_if_unused(job.output_dir)
        raise
    finally:
        bar.close()
    return [returns[index] for index in sorted(returns)]


def _train_group(launcher: "BatchedLauncher", group_jobs: list[Job], bar: tqdm) -> dict[int, JobReturn]:
    """One group trained together; each job's JobReturn. A failure is recorded for each job it
    stopped (jobs of the group that had finished keep their results), and the sweep goes on."""
    from experiments.group import train_group

    planned = bar.n + sum(job.values["trainer"]["max_epochs"] for job in group_jobs)
    for job in group_jobs:
        clear_attempt(job.output_dir)  # in a resumed sweep, what a failed attempt left
        launcher.job_started(job)
    results: dict[int, dict[str, Any]] = {}
    try:
        interrupted = train_group(group_jobs, group_jobs[0].choices, bar.update, results)
    except Exception as error:  # one group's failure must not end the sweep (the disk's does)
        if is_disk_trouble(error):
            raise
        for job in group_jobs:
            if job.index not in results:
                record_failure(job.values, job.output_dir, error)
        interrupted = False
    returns = {}
    for job in group_jobs:
        summary = results.get(job.index)
        if summary is not None:
            result = format_result(summary, job.output_dir, compact=True).strip()
            bar.write(f"#{job.index} {' '.join(job.overrides)}: {result}")
        returns[job.index] = launcher.job_ended(job, objective(summary) if summary else math.inf)
    bar.update(planned - bar.n)
    if interrupted:
        for job in group_jobs:
            remove_if_unused(job.output_dir)
        stopping.stop()
    return returns


def describe_plan(jobs: list[Job], groups: dict[str, list[Job]], alone: list[Job]) -> str:
    """How the jobs will train, e.g. "Training 9 jobs: 9 together in 1 group, as 3 trajectories
    (jobs that differ only in epochs share one)."."""

    def trajectory(job: Job) -> str:  # as group.train_group tells them apart
        return json.dumps([job.values["seed"], job.values["optim"], job.values["schedule"]], sort_keys=True)

    trajectories = sum(len(set(map(trajectory, group_jobs))) for group_jobs in groups.values())
    parts = []
    if groups:
        together = sum(map(len, groups.values()))
        shared = " (jobs that differ only in epochs share one)" if trajectories < together else ""
        parts.append(
            f"{together} together in {len(groups)} group{'s' * (len(groups) > 1)}, as {trajectories} "
            f"trajector{'ies' if trajectories > 1 else 'y'}{shared}"
        )
    if alone:
        parts.append(f"{len(alone)} one at a time")
    return f"Training {len(jobs)} job{'s' * (len(jobs) > 1)}: " + "; ".join(parts) + "."


def refuse_invalid(jobs: list["Job | InvalidJob"], sweep_dir: Path) -> None:
    """Check every job before any trains; if any is invalid, end the command (exit 2) saying which and
    why, one line each, with nothing written for the jobs."""
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
    raise Exit(
        2,
        UserError(
            f"{len(problems)} of the {len(jobs)} jobs to run are invalid, so none of them was run:\n"
            + "\n".join(problems)
        ),
    )


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
