"""This project's Hydra plugins, where Hydra looks for them (the `hydra_plugins` package):
`hydra/launcher=batched`, which trains a sweep's jobs together, and `hydra/sweeper=batched`, the
basic sweeper without its second composition of every job. The code is in `experiments.launcher`."""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper, BasicSweeperConf
from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher

from experiments import launcher
from experiments.resume import finished_jobs
from experiments.sweeps import SweepSummary


class BatchedLauncher(launcher.BatchedLauncher):
    """See `experiments.launcher.BatchedLauncher`."""


class BatchedSweeper(BasicSweeper):
    """Hydra's basic sweeper, except that it leaves checking that every job composes to the batched
    launcher, which composes them anyway (the basic sweeper composes each job once more to check it),
    tells the sweep summary which jobs it plans, and in a resumed sweep (`resume=SWEEP`) launches
    only the jobs not yet finished, with any launcher."""

    def sweep(self, arguments: list[str]) -> Any:
        self.launcher = UnfinishedJobs(self, self.launcher)
        try:
            return super().sweep(arguments)
        finally:
            self.launcher = self.launcher.launcher

    def validate_batch_is_legal(self, batch) -> None:
        if not isinstance(getattr(self.launcher, "launcher", self.launcher), launcher.BatchedLauncher):
            super().validate_batch_is_legal(batch)


class UnfinishedJobs:
    """The sweeper's launcher, given only the jobs a resumed sweep has not finished: each run of
    consecutive ones with its own first job number, so that every job keeps its number and folder."""

    def __init__(self, sweeper: BatchedSweeper, launcher: Launcher) -> None:
        self.sweeper, self.launcher = sweeper, launcher

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
        config = self.sweeper.config
        SweepSummary.planned = [list(job) for batch in self.sweeper.overrides for job in batch]
        finished = set()
        if config.get("resume") is not None:
            finished = finished_jobs(Path(config.hydra.sweep.dir), job_overrides, initial_job_idx)
        returns: list[JobReturn] = []
        start = 0
        while start < len(job_overrides):
            if initial_job_idx + start in finished:
                start += 1
                continue
            stop = start
            while stop < len(job_overrides) and initial_job_idx + stop not in finished:
                stop += 1
            returns += self.launcher.launch(job_overrides[start:stop], initial_job_idx + start)
            start = stop
        return returns


@dataclass
class BatchedLauncherConf:
    _target_: str = "hydra_plugins.experiments_launcher.batched_launcher.BatchedLauncher"


@dataclass
class BatchedSweeperConf(BasicSweeperConf):
    _target_: str = "hydra_plugins.experiments_launcher.batched_launcher.BatchedSweeper"


ConfigStore.instance().store(group="hydra/launcher", name="batched", node=BatchedLauncherConf, provider="experiments")
ConfigStore.instance().store(group="hydra/sweeper", name="batched", node=BatchedSweeperConf, provider="experiments")
