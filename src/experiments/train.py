"""`python train.py [overrides]`: compose an experiment, train it, and record the result.

Data flows one way: config -> seed -> data -> model sized from the data -> Lightning module
with the configured optimizer -> Trainer logging to TensorBoard in the job folder -> fit ->
checkpoint, summary.json, console report. `train(cfg)` does it all and returns the summary;
`main()` is the command-line wrapper.
"""

import logging
import math
import os
import shutil
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import hydra
import lightning.pytorch as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from experiments.callbacks import EpochProgressBar, EpochRecorder
from experiments.errors import UserError
from experiments.module import RegressionModule
from experiments.report import format_report, write_summary
from experiments.sweep import SweepSummary

# Lightning's start-up notices ("GPU available: False ...", tips) say nothing a student needs.
for _name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda"):
    logging.getLogger(_name).setLevel(logging.WARNING)
# Lightning 2.6 calls a torch.utils._pytree API that torch 2.13 deprecates; nothing to act on.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")


PRECISIONS = {"32", "32-true", "64", "64-true"}
# Lightning options for its own optimizer loop, which training_step replaces (see experiments.module).
UNSUPPORTED_TRAINER_KEYS = {"max_steps": -1, "accumulate_grad_batches": 1, "gradient_clip_val": None}


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate(cfg: DictConfig) -> None:
    """Refuse settings that cannot train, before anything is built or written."""
    lr = cfg.optim.get("lr")
    if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr) and lr > 0):
        raise UserError(f"optim.lr must be a positive, finite number such as optim.lr=1e-5; got {lr!r}.")
    epochs = cfg.trainer.get("max_epochs")
    if not (_is_whole(epochs) and epochs >= 1):
        raise UserError(f"trainer.max_epochs must be a whole number of at least 1; got {epochs!r}.")
    batch_size = cfg.data.get("batch_size")
    if not (batch_size is None or (_is_whole(batch_size) and batch_size >= 1)):
        raise UserError(f"data.batch_size must be a whole number of at least 1, or null for the whole data set "
                        f"in one batch; got {batch_size!r}.")
    for key in ("shuffle", "standardize"):
        if not isinstance(cfg.data.get(key, False), bool):
            raise UserError(f"data.{key} must be true or false; got {cfg.data.get(key)!r}.")
    val_fraction = cfg.data.get("val_fraction", 0.0)
    if not (isinstance(val_fraction, (int, float)) and not isinstance(val_fraction, bool) and 0 <= val_fraction < 1):
        raise UserError(f"data.val_fraction must be a number from 0 (no validation rows) up to, but not "
                        f"including, 1; got {val_fraction!r}.")
    if not (_is_whole(cfg.seed) and 0 <= cfg.seed < 2**32):
        raise UserError(f"seed must be a whole number from 0 to 4294967295; got {cfg.seed!r}.")
    if cfg.trainer.get("devices", 1) != 1:
        raise UserError(f"trainer.devices must be 1; got {cfg.trainer.devices!r}. A linear regression fits on one "
                        f"device, and every job writes its results from a single process.")
    strategy = str(cfg.trainer.get("strategy", ""))
    if HydraConfig.get().mode == RunMode.MULTIRUN and any(s in strategy for s in ("ddp", "fsdp", "deepspeed")):
        raise UserError(f"trainer.strategy={strategy} cannot run inside a multirun (-m): its worker processes would "
                        f"re-run the whole sweep. Run it as a single run, without -m.")
    precision = str(cfg.trainer.get("precision", "32"))
    if precision not in PRECISIONS:
        half = " Half precision keeps about 3 significant digits, too few to find an optimum." if "16" in precision else ""
        raise UserError(f"trainer.precision must be 32 or 64 (float32 or float64); got {precision!r}.{half}")
    for key, default in UNSUPPORTED_TRAINER_KEYS.items():
        if cfg.trainer.get(key, default) != default:
            raise UserError(f"trainer.{key} is not supported here: each optimizer step is taken by "
                            f"RegressionModule.training_step's own loop, not by Lightning's. Remove it.")
    if cfg.trainer.get("accelerator") == "gpu" and not (torch.cuda.is_available() or torch.backends.mps.is_available()):
        raise UserError("accelerator=gpu, but PyTorch sees no GPU here (torch.cuda.is_available() is False); "
                        "use accelerator=cpu, or accelerator=auto to take a GPU only where there is one.")


def _build(cfg: DictConfig, what: str, **kwargs: Any) -> Any:
    """instantiate(cfg[what]), with a refused value reported as the user's mistake it is."""
    try:
        return instantiate(cfg[what], **kwargs)
    except MissingMandatoryValue as error:
        raise UserError(f"{error.full_key} must be given, e.g. "
                        f"python train.py data=csv data.path=FILE.csv data.targets=[COLUMN]") from None
    except InstantiationException as error:
        cause = error.__cause__ or error
        if isinstance(cause, UserError):
            raise cause from None
        raise UserError(f"{what}: {type(cause).__name__}: {cause}") from error


def _make_trainer(cfg: DictConfig, run_dir: Path, recorder: EpochRecorder, progress_bar: bool) -> pl.Trainer:
    callbacks = [recorder] + ([EpochProgressBar(recorder)] if progress_bar else [])
    # One event file directly in the job folder: TensorBoard names the run by the folder.
    logger = TensorBoardLogger(save_dir=run_dir, name="", version="", default_hp_metric=False,
                               max_queue=EpochRecorder.WRITE_EVENTS)
    logger.hparams = dict(recorder.hparams)  # what its hparams.yaml records
    try:
        return pl.Trainer(
            **cfg.trainer,
            default_root_dir=run_dir,
            logger=logger,
            callbacks=callbacks,
            enable_progress_bar=progress_bar,
            enable_checkpointing=False,  # one checkpoint, written at the end by train()
            enable_model_summary=False,
            num_sanity_val_steps=0,
            log_every_n_steps=1,  # nothing is logged per step; this only silences a warning
        )
    except (TypeError, ValueError, MisconfigurationException) as error:  # refused trainer.* settings
        raise UserError(f"the Lightning Trainer refused the trainer settings: {error}") from error


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train one composed experiment in `cfg.output_dir` and return its summary."""
    validate(cfg)
    hydra_cfg = HydraConfig.get()
    choices = hydra_cfg.runtime.choices
    run_dir = Path(cfg.output_dir)

    # Seeded at the start of every job: a multirun reuses the process and its random state.
    pl.seed_everything(cfg.seed, verbose=False)
    datamodule = _build(cfg, "data", seed=cfg.seed)
    model = _build(cfg, "model", in_features=datamodule.num_features, out_features=datamodule.num_targets)
    optimizer = _build(cfg, "optim")
    try:  # made here, not first inside fit, so that a refused option stops the run before it starts
        optimizer = optimizer(model.parameters())
    except (TypeError, ValueError) as error:
        raise UserError(f"optim: {error}") from error
    module = RegressionModule(model, optimizer, scaler=datamodule.scaler)

    setup = {"data": choices.get("data"), "model": choices.get("model"), "optim": choices.get("optim"),
             "lr": cfg.optim.lr, "batch_size": datamodule.batch_size, "shuffle": datamodule.shuffle,
             "standardize": datamodule.scaler is not None, "max_epochs": cfg.trainer.max_epochs, "seed": cfg.seed}
    recorder = EpochRecorder(hparams=setup)
    trainer = _make_trainer(cfg, run_dir, recorder, progress_bar=hydra_cfg.mode != RunMode.MULTIRUN)
    datamodule.check_memory(trainer)
    started = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule)
    except SystemExit:  # Lightning exits after a graceful Ctrl-C shutdown; keep what was learned
        if not trainer.interrupted:
            raise
    seconds = time.perf_counter() - started
    trainer.save_checkpoint(run_dir / "checkpoints" / "last.ckpt", weights_only=False)

    final_loss, optimum, epochs = recorder.losses[-1], datamodule.reference, len(recorder.losses) - 1
    weights, bias = (t.cpu().double().tolist() for t in module.original_weights())
    summary = {
        "status": "interrupted" if trainer.interrupted else "diverged" if recorder.diverged_at_epoch else "ok",
        "diverged_at_epoch": recorder.diverged_at_epoch,
        "final_loss": final_loss,
        "optimal_loss": optimum.loss,
        "loss_ratio": recorder.ratio(final_loss),
        "max_stable_lr": optimum.max_stable_lr,
        "val_loss": recorder.val_loss,
        "weights": weights,
        "bias": bias,
        "optimal_weights": optimum.weights.tolist(),
        "optimal_bias": optimum.bias.tolist(),
        **_true_weights(datamodule),
        "feature_names": datamodule.feature_names,
        "target_names": datamodule.target_names,
        "rows": datamodule.rows,
        "epochs": epochs,
        "steps": module.steps,
        "seconds": seconds,
        "train_seconds": recorder.train_seconds,
        "rows_per_second": datamodule.rows * epochs / recorder.train_seconds if recorder.train_seconds else None,
        **setup,
        "accelerator": cfg.trainer.accelerator,
        "device": trainer.strategy.root_device.type,
        "threads": torch.get_num_threads(),
    }
    write_summary(run_dir, summary)
    print(format_report(summary, run_dir, compact=hydra_cfg.mode == RunMode.MULTIRUN), flush=True)
    if trainer.interrupted:
        raise SystemExit(130)
    return summary


def _true_weights(datamodule) -> dict[str, Any]:
    """Synthetic data's true weights and bias, for the summary; nothing for other data."""
    if not hasattr(datamodule.source, "true_weights"):
        return {}
    weights, bias = datamodule.source.true_weights()
    return {"true_weights": weights.tolist(), "true_bias": bias.tolist()}


def _discard_if_empty(run_dir: Path) -> None:
    """Remove a job folder that holds nothing but Hydra's copy of the config."""
    if run_dir.is_dir() and all(p.name == ".hydra" for p in run_dir.iterdir()):
        shutil.rmtree(run_dir)


# The repository's conf/, found from this file so train.py runs from any directory.
CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float:
    """The command line. Returns the final loss, the number a sweeper such as Optuna minimises.

    A single run with a user error prints it in one line and exits with status 2
    (HYDRA_FULL_ERROR=1 shows the traceback). In a multirun a job that fails, for whatever reason,
    is recorded as failed in its folder and the sweep goes on; the sweep summary reports it.
    """
    run_dir = Path(cfg.output_dir)
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        try:
            summary = train(cfg)
        except Exception as error:  # noqa: BLE001 - one job's failure must not end the sweep
            _record_failure(cfg, run_dir, error)
            return math.inf
        except SystemExit:  # Ctrl-C: Hydra will not reach the end of the sweep, so report it here
            SweepSummary().report(Path(HydraConfig.get().sweep.dir))
            raise
    else:
        try:
            summary = train(cfg)
        except UserError as error:
            _discard_if_empty(run_dir)
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"Error: {error}", file=sys.stderr)
            sys.exit(2)
    return summary["final_loss"] if summary["status"] == "ok" else math.inf


def _record_failure(cfg: DictConfig, run_dir: Path, error: Exception) -> None:
    """A failed sweep job's summary.json (status failed, the error) and, for a bug rather than a
    user error, its traceback in error.txt. Reads the config defensively: it may be what failed."""
    message = str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}"
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
