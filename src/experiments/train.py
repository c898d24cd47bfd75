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
from lightning.fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

from experiments.callbacks import EpochProgressBar, EpochRecorder, FitPicture, StopOnDivergence
from experiments.config import check
from experiments.errors import UserError
from experiments.logger import EpochLogger
from experiments.module import OptimizerFactory, RegressionModule
from experiments.summary import format_result, run_settings, run_summary, write_summary

# Lightning's start-up notices ("GPU available: False ...", tips) say nothing a student needs.
for _name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda"):
    logging.getLogger(_name).setLevel(logging.WARNING)
# Lightning 2.6 calls a torch.utils._pytree API that torch 2.13 deprecates; nothing to act on.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train one composed experiment in `cfg.output_dir` and return its summary."""
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    check(cfg, multirun)
    run_dir = Path(cfg.output_dir)

    pl.seed_everything(cfg.seed, verbose=False)  # at every job's start: a multirun reuses the process
    datamodule = build(cfg, "data", seed=cfg.seed)
    model = build(cfg, "model", in_features=datamodule.num_features, out_features=datamodule.num_targets)
    settings = run_settings(cfg, hydra_cfg.runtime.choices, datamodule)
    module = RegressionModule(model, build_optimizer(cfg), scaler=datamodule.scaler, settings=settings)
    recorder = EpochRecorder()
    divergence = StopOnDivergence(recorder)
    callbacks = [recorder, divergence] + ([FitPicture(divergence)] if draws_fit_picture(cfg, multirun) else [])
    callbacks += [] if multirun else [EpochProgressBar(recorder)]
    trainer = make_trainer(cfg, run_dir, callbacks)
    datamodule.check_memory(trainer)

    started = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule)
    except SystemExit:  # Lightning exits after a graceful Ctrl-C shutdown; keep what was learned
        if not trainer.interrupted:
            raise
    seconds = time.perf_counter() - started
    if trainer.interrupted and not recorder.losses:  # Ctrl-C before training started: nothing to record
        raise SystemExit(130)

    trainer.save_checkpoint(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    summary = run_summary(trainer, module, datamodule, recorder, divergence, seconds)
    write_summary(run_dir, summary)
    print(format_result(summary, run_dir, compact=multirun), flush=True)
    if trainer.interrupted:
        raise SystemExit(130)
    return summary


def draws_fit_picture(cfg: DictConfig, multirun: bool) -> bool:
    """Whether a run draws the picture of its fit: `fit_picture`, or if that is null, unless it is a sweep's job."""
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


def make_trainer(cfg: DictConfig, run_dir: Path, callbacks: list[pl.Callback], logger: bool = True) -> pl.Trainer:
    """A Trainer for the configured `trainer.*` settings, logging to TensorBoard in `run_dir`
    (unless `logger` is False: a sweep group's jobs each log to their own)."""
    progress_bar = any(isinstance(callback, pl.callbacks.ProgressBar) for callback in callbacks)
    try:
        return pl.Trainer(
            **cfg.trainer,
            default_root_dir=run_dir,
            logger=EpochLogger(run_dir) if logger else False,
            callbacks=callbacks,
            enable_progress_bar=progress_bar,
            enable_checkpointing=False,  # one checkpoint, written at the end by train()
            enable_model_summary=False,
            num_sanity_val_steps=0,
            log_every_n_steps=1,  # nothing is logged per step; this only silences a warning
        )
    except (TypeError, ValueError, MisconfigurationException) as error:  # refused trainer.* settings
        raise UserError(f"the Lightning Trainer refused the trainer settings: {error}") from error
