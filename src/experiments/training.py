"""`train(cfg)`: build the data, model and Trainer a composed config describes, fit, and record the run.

Data flows one way: config -> seed -> data -> model sized from the data -> Lightning module with
the configured optimizer -> Trainer logging to TensorBoard in the job folder -> fit -> checkpoint,
summary.json, console report. The command line around it is `experiments.cli`.
"""

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

from experiments import stopping
from experiments.callbacks import EpochProgressBar, EpochRecorder, RunPictures, StopOnDivergence
from experiments.config import check
from experiments.errors import UserError
from experiments.files import write_whole
from experiments.landscape import write_landscape
from experiments.logger import EpochLogger
from experiments.module import OptimizerFactory, RegressionModule
from experiments.resume import clear_attempt, prepare_resume
from experiments.schedules import SchedulerFactory, scheduler_factory
from experiments.summary import format_result, run_settings, run_summary, write_summary

# Lightning's start-up notices ("GPU available: False ...", tips) say nothing a student needs.
for _name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda"):
    logging.getLogger(_name).setLevel(logging.WARNING)
# Lightning 2.6 calls a torch.utils._pytree API that torch 2.13 deprecates; nothing to act on.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train one composed experiment in `cfg.output_dir` (continuing it, with `cfg.resume`) and
    return its summary. A signal stops it at the end of the epoch: it is recorded as interrupted,
    then `experiments.stopping.Stopped` is raised."""
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    check(cfg, multirun)
    run_dir = Path(cfg.output_dir)
    # A sweep's job continues what an earlier attempt of it left (requeued by Slurm, or resume=SWEEP).
    resume = cfg.get("resume") or (str(hydra_cfg.sweep.dir) if multirun else None)
    resumed = prepare_resume(resume, run_dir, cfg.trainer.max_epochs, cfg.schedule)

    pl.seed_everything(cfg.seed, verbose=False)  # at every job's start: a multirun reuses the process
    datamodule = build(cfg, "data", seed=cfg.seed)
    model = build(cfg, "model", in_features=datamodule.num_features, out_features=datamodule.num_targets)
    settings = run_settings(cfg, hydra_cfg.runtime.choices, datamodule)
    make_optimizer, make_scheduler = build_optimizer(cfg), build_scheduler(cfg)
    module = RegressionModule(model, make_optimizer, datamodule.scaler, settings, make_scheduler)
    recorder = EpochRecorder(resumed, cfg.get("checkpoint_minutes"))
    divergence = StopOnDivergence(recorder)
    callbacks = [recorder, divergence] + ([RunPictures(divergence)] if draws_fit_picture(cfg, multirun) else [])
    callbacks += [] if multirun else [EpochProgressBar(recorder)]
    trainer = make_trainer(cfg, run_dir, callbacks, max_epochs=cfg.trainer.max_epochs - recorder.first_epoch)
    datamodule.check_memory(trainer)

    started = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule)
    except UserError:  # refused in set-up, once the data is read (data.whiten on dependent features)
        if resumed is None:
            clear_attempt(run_dir)
        raise
    except SystemExit:  # Lightning exits after its shutdown on a signal that stops at once; keep what was learned
        if not trainer.interrupted:
            raise
        stopping.note_interrupt()
    finally:
        stopping.training_ended()
        stopping.install()  # Lightning leaves Ctrl-C ignored after its shutdown
    seconds = recorder.earlier_seconds + time.perf_counter() - started
    if not recorder.started:  # stopped in Lightning's set-up: nothing to record
        if resumed is None:
            clear_attempt(run_dir)  # its TensorBoard file and hparams.yaml hold nothing yet
        stopping.stop()

    stopped = stopping.requested() and recorder.epochs < cfg.trainer.max_epochs
    with stopping.whole():
        if not trainer.interrupted:  # a second signal stops mid-epoch: its weights are no state to resume from
            trainer.save_checkpoint(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
        summary = run_summary(trainer, module, datamodule, recorder, divergence, seconds, stopped)
        write_summary(run_dir, summary)
        landscape = recorder.landscape()
        if landscape is not None:
            write_landscape(run_dir, landscape)
        stopping.moment("summary_written")
        print(format_result(summary, run_dir, compact=multirun), flush=True)
    stopping.stop()
    return summary


def draws_fit_picture(cfg: DictConfig, multirun: bool) -> bool:
    """Whether a run draws its pictures (its fit and its landscape): `fit_picture`, or if that is null,
    unless it is a sweep's job."""
    return cfg.fit_picture if cfg.get("fit_picture") is not None else not multirun


def build(cfg: DictConfig, group: str, **kwargs: Any) -> Any:
    """`instantiate(cfg[group])`, with a refused value reported as the user's mistake it is."""
    try:
        return instantiate(cfg[group], **kwargs)
    except MissingMandatoryValue as error:
        raise UserError(
            f"{error.full_key} must be given, e.g. python train.py data=csv data.path=FILE.csv data.targets=[COLUMN]"
        ) from None
    except InstantiationException as error:
        cause = error.__cause__ or error
        if isinstance(cause, UserError):
            raise cause from None
        raise UserError(f"{group}: {type(cause).__name__}: {cause}") from error


def build_optimizer(cfg: DictConfig) -> OptimizerFactory:
    """The configured optimizer as a partial over parameters, tried once on a stand-in parameter so
    that an option it refuses (a negative momentum) stops the run before anything is written."""
    make_optimizer = build(cfg, "optim")
    try:
        make_optimizer([torch.nn.Parameter(torch.zeros(1))])
    except (TypeError, ValueError) as error:
        raise UserError(f"optim: {error}") from error
    return make_optimizer


def build_scheduler(cfg: DictConfig) -> SchedulerFactory | None:
    """The configured schedule as a partial over an optimizer (None: a constant rate), tried once on a
    stand-in optimizer so that a setting the scheduler refuses stops the run before anything is written."""
    try:
        make_scheduler = scheduler_factory(cfg.schedule)
        if make_scheduler is not None:
            make_scheduler(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.optim.lr))
    except (TypeError, ValueError, ImportError) as error:
        raise UserError(f"schedule: {error}") from error
    return make_scheduler


def make_trainer(
    cfg: DictConfig, run_dir: Path, callbacks: list[pl.Callback], logger: bool = True, max_epochs: int | None = None
) -> pl.Trainer:
    """A Trainer for the configured `trainer.*` settings (with `max_epochs` in place of the configured
    number, if given), logging to TensorBoard in `run_dir` (unless `logger` is False: a sweep group's
    jobs each log to their own), saving checkpoints whole."""
    progress_bar = any(isinstance(callback, pl.callbacks.ProgressBar) for callback in callbacks)
    settings = {**cfg.trainer, **({"max_epochs": max_epochs} if max_epochs is not None else {})}
    try:
        return pl.Trainer(
            **settings,
            default_root_dir=run_dir,
            logger=EpochLogger(run_dir, cfg.trainer.max_epochs) if logger else False,
            callbacks=callbacks,
            enable_progress_bar=progress_bar,
            enable_checkpointing=False,  # written by train() at the end, and by EpochRecorder now and then
            plugins=[WholeCheckpointIO()],
            enable_model_summary=False,
            num_sanity_val_steps=0,
            log_every_n_steps=1,  # nothing is logged per step; this only silences a warning
        )
    except (TypeError, ValueError, MisconfigurationException) as error:  # refused trainer.* settings
        raise UserError(f"the Lightning Trainer refused the trainer settings: {error}") from error


class WholeCheckpointIO(TorchCheckpointIO):
    """Checkpoints written whole (`experiments.files.write_whole`): Lightning's own writer goes
    through a temporary file in $TMPDIR, which a signal can strand there or cut short."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_whole(path, lambda file: torch.save(checkpoint, file))
