"""This project's Hydra plugins, where Hydra looks for them (the `hydra_plugins` package):
`hydra/launcher=batched`, which trains a sweep's jobs together, and `hydra/sweeper=batched`, the
basic sweeper without its second composition of every job. The code is in `experiments.launcher`."""

from dataclasses import dataclass

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper, BasicSweeperConf
from hydra.core.config_store import ConfigStore

from experiments import launcher


class BatchedLauncher(launcher.BatchedLauncher):
    """See `experiments.launcher.BatchedLauncher`."""


class BatchedSweeper(BasicSweeper):
    """Hydra's basic sweeper, except that it leaves checking that every job composes to the batched
    launcher, which composes them anyway (the basic sweeper composes each job once more to check it)."""

    def validate_batch_is_legal(self, batch) -> None:
        if not isinstance(self.launcher, launcher.BatchedLauncher):
            super().validate_batch_is_legal(batch)


@dataclass
class BatchedLauncherConf:
    _target_: str = "hydra_plugins.experiments_launcher.batched_launcher.BatchedLauncher"


@dataclass
class BatchedSweeperConf(BasicSweeperConf):
    _target_: str = "hydra_plugins.experiments_launcher.batched_launcher.BatchedSweeper"


ConfigStore.instance().store(group="hydra/launcher", name="batched", node=BatchedLauncherConf, provider="experiments")
ConfigStore.instance().store(group="hydra/sweeper", name="batched", node=BatchedSweeperConf, provider="experiments")
