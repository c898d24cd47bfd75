"""The default multirun launcher, `hydra/launcher=batched` (registered with Hydra by
`hydra_plugins.experiments_launcher`; `hydra/launcher=basic` runs every job on its own).

It composes a sweep's jobs once per kind (`experiments.jobs`). A task function that can train jobs
together says so with a `train_together(launcher, jobs)` attribute (train.py's does, see
`experiments.sweeps.train_sweep`) and is handed all of them at once; any other task is run job by
job exactly as Hydra's basic launcher runs it, so the launcher serves any Hydra app.
"""

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobRuntime, JobStatus, configure_log, run_job, setup_globals
from hydra.experimental.callback import Callback
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from experiments.jobs import InvalidJob, Job, compose_jobs

log = logging.getLogger(__name__)


class BatchedLauncher(Launcher):
    def __init__(self) -> None:
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        together = getattr(self.task_function, "train_together", None)
        if together is not None:
            return together(self, job_overrides, initial_job_idx)
        log.info(f"Launching {len(job_overrides)} jobs locally")
        jobs = self.compose(job_overrides, initial_job_idx)
        for job in jobs:
            if isinstance(job, InvalidJob):
                raise job.error
        return [self.run_one(job) for job in jobs]

    def compose(
        self,
        job_overrides: Sequence[Sequence[str]],
        initial_job_idx: int,
        keep_config: Callable[[dict[str, Any]], bool] = lambda values: True,
    ) -> list[Job | InvalidJob]:
        """Every job of a batch composed (invalid ones as `InvalidJob`); `keep_config(values)` says
        which need their whole config, to be run by `run_one`."""
        return list(compose_jobs(self.hydra_context, self.config, job_overrides, initial_job_idx, keep_config))

    def run_one(self, job: Job) -> JobReturn:
        """Run one job by the task function, as Hydra's basic launcher runs it."""
        log.info(f"\t#{job.index} : {' '.join(job.overrides)}")
        ret = run_job(
            hydra_context=self.hydra_context,
            task_function=self.task_function,
            config=job.config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return ret

    def job_started(self, job: Job) -> None:
        """What `run_job` does before it calls the task: the job's folder and .hydra/ files, and the
        callbacks' `on_job_start`."""
        job.output_dir.mkdir(parents=True, exist_ok=True)
        job.write_hydra_files()
        if self._job_callbacks("on_job_start"):
            self.hydra_context.callbacks.on_job_start(config=job.whole_config(), task_function=self.task_function)

    def job_ended(self, job: Job, value: Any) -> JobReturn:
        """The JobReturn of a job the task trained with others, as `run_job` makes it, after the
        callbacks' `on_job_end`."""
        ret = GroupJobReturn(
            job,
            overrides=job.overrides,
            working_dir=str(Path.cwd()),
            task_name=JobRuntime.instance().get("name"),
            status=JobStatus.COMPLETED,
        )
        ret.return_value = value
        if self._job_callbacks("on_job_end"):
            self.hydra_context.callbacks.on_job_end(config=job.whole_config(), job_return=ret)
        return ret

    def _job_callbacks(self, hook: str) -> bool:
        """Whether any configured Hydra callback acts on `hook` (making each job's whole config costs milliseconds)."""
        callbacks = getattr(self.hydra_context.callbacks, "callbacks", [])
        return any(getattr(type(callback), hook) is not getattr(Callback, hook) for callback in callbacks)


class GroupJobReturn(JobReturn):
    """A JobReturn whose `cfg` and `hydra_cfg` are read from the job's .hydra/ files when first asked for."""

    def __init__(self, job: Job, **kwargs: Any) -> None:
        self._job, self._cfg, self._hydra_cfg = job, None, None
        super().__init__(**kwargs)

    @property
    def cfg(self) -> DictConfig:
        if self._cfg is None:
            self._cfg = OmegaConf.create(self._job.files["config.yaml"])
        return self._cfg

    @cfg.setter
    def cfg(self, value: DictConfig | None) -> None:
        self._cfg = value

    @property
    def hydra_cfg(self) -> DictConfig:
        if self._hydra_cfg is None:
            self._hydra_cfg = OmegaConf.create(self._job.files["hydra.yaml"])
        return self._hydra_cfg

    @hydra_cfg.setter
    def hydra_cfg(self, value: DictConfig | None) -> None:
        self._hydra_cfg = value
