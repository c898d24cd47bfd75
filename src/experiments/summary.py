"""A finished run in words: its summary, written as summary.json, and the lines printed at the end."""

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from experiments.files import write_whole

if TYPE_CHECKING:
    import lightning.pytorch as pl
    from omegaconf import DictConfig

    from experiments.callbacks import EpochRecorder, StopOnDivergence
    from experiments.datamodule import RegressionDataModule
    from experiments.module import RegressionModule


SHOWN_TERMS = 8  # weights printed per target; all of them are in summary.json
SHOWN_TARGETS = 8


def _json_safe(value: Any) -> Any:
    """`value` with every non-finite float, however deeply nested (a diverged run's weights), as None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


def objective(summary: dict[str, Any]) -> float:
    """The number a sweeper such as Optuna minimizes: the final loss, or infinity unless the run ended ok."""
    return summary["final_loss"] if summary["status"] == "ok" else math.inf


def run_settings(
    cfg: "DictConfig | dict[str, Any]", choices: dict[str, str], datamodule: "RegressionDataModule"
) -> dict[str, Any]:
    """What a run was set to do, as its summary and TensorBoard's HPARAMS tab record it: the options of
    each config group, its optimizer's and its schedule's own settings (`momentum`, `T_max`) by name."""
    return {
        "data": choices.get("data"),
        "model": choices.get("model"),
        "optim": choices.get("optim"),
        **_options(cfg["optim"]),
        "schedule": choices.get("schedule"),
        **_options(cfg.get("schedule") or {}),
        "batch_size": datamodule.batch_size,
        "shuffle": datamodule.shuffle,
        "standardize": datamodule.scaler is not None,
        "whiten": datamodule.whiten,
        "max_epochs": cfg["trainer"]["max_epochs"],
        "seed": cfg["seed"],
        "accelerator": cfg["trainer"]["accelerator"],
    }


def _options(group: Mapping[str, Any]) -> dict[str, Any]:
    """A config group's settings without the keys that tell Hydra what to build, as plain values."""
    return {
        key: list(value) if isinstance(value, Sequence) and not isinstance(value, str) else value
        for key, value in group.items()
        if not key.startswith("_")
    }


def run_summary(
    trainer: "pl.Trainer",
    module: "RegressionModule",
    datamodule: "RegressionDataModule",
    recorder: "EpochRecorder",
    divergence: "StopOnDivergence",
    seconds: float,
    stopped: bool,
) -> dict[str, Any]:
    """Everything summary.json records of a fitted single run (see `summary_of`); `stopped`: by a
    signal before its last epoch."""
    weights, bias = (t.cpu().double().tolist() for t in module.original_weights())
    status = "diverged" if divergence.diverged_at_epoch else "interrupted" if stopped or trainer.interrupted else "ok"
    return summary_of(
        status=status,
        diverged_at_epoch=divergence.diverged_at_epoch,
        losses=recorder.losses,
        val_loss=recorder.val_loss,
        weights=weights,
        bias=bias,
        datamodule=datamodule,
        steps=module.steps,
        seconds=seconds,
        train_seconds=recorder.train_seconds,
        settings=dict(module.hparams),
        device=trainer.strategy.root_device.type,
    )


def summary_of(
    *,
    status: str,
    diverged_at_epoch: int | None,
    losses: list[float],
    val_loss: float | None,
    weights: list[list[float]],
    bias: list[float],
    datamodule: "RegressionDataModule",
    steps: int,
    seconds: float,
    train_seconds: float,
    settings: dict[str, Any],
    device: str,
) -> dict[str, Any]:
    """Everything summary.json records of a run: how it ended, its loss (`losses`: before training and
    after each epoch) against the optimum, the weights learned (in the data's units) and the optimal
    ones, its size and speed, and what it was set to do (`settings`)."""
    import torch

    evaluator = datamodule.evaluator
    optimum, final_loss, epochs = evaluator.optimum, losses[-1], len(losses) - 1
    true_weights = {}
    if evaluator.true_weights is not None:
        true_weights = {
            "true_weights": evaluator.true_weights[0].tolist(),
            "true_bias": evaluator.true_weights[1].tolist(),
        }
    return {
        "status": status,
        "diverged_at_epoch": diverged_at_epoch,
        "final_loss": final_loss,
        "optimal_loss": optimum.loss,
        "loss_ratio": evaluator.ratio(final_loss),
        "max_stable_lr": optimum.max_stable_lr,
        "val_loss": val_loss,
        "weights": weights,
        "bias": bias,
        "optimal_weights": optimum.weights.tolist(),
        "optimal_bias": optimum.bias.tolist(),
        **true_weights,
        "feature_names": datamodule.feature_names,
        "target_names": datamodule.target_names,
        "rows": datamodule.rows,
        "epochs": epochs,
        "steps": steps,
        "seconds": seconds,
        "train_seconds": train_seconds,
        "rows_per_second": datamodule.rows * epochs / train_seconds if train_seconds else None,
        **settings,
        "device": device,
        "threads": torch.get_num_threads(),
    }


def write_summary(run_dir: Path, summary: dict[str, Any]) -> Path:
    """Write `summary.json` whole; non-finite numbers (a diverged run) become null, which JSON can hold."""
    safe = {key: _json_safe(value) for key, value in summary.items()}
    return write_whole(run_dir / "summary.json", json.dumps(safe, indent=2, allow_nan=False) + "\n")


def _ratio(ratio: float | None) -> str:
    """A loss ratio as a student reads it: 1.0003, not 1, near the optimum; 289.5 far from it."""
    return "inf" if ratio is None or not math.isfinite(ratio) else f"{ratio:.4f}" if ratio < 10 else f"{ratio:.4g}"


def _shown_path(path: Path) -> str:
    """The path as the user would type it: relative to where they are, if it lies below."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def format_result(summary: dict[str, Any], run_dir: Path, compact: bool = False) -> str:
    """A few lines a student can read: how it ended, how close to optimal, what was learned.
    `compact`, for the jobs of a sweep, is one line: the sweep's table follows at the end."""
    if compact:
        return (
            f"  {summary['status']}: loss {summary['final_loss']:.6g} ({_ratio(summary['loss_ratio'])}x optimal) "
            f"after {summary['epochs']} epochs, {summary['seconds']:.2f} s"
        )
    lines = []
    if summary["status"] == "diverged":
        lines.append(
            f"Diverged at epoch {summary['diverged_at_epoch']}: the loss grew to {summary['final_loss']:.4g}. "
            f"optim.lr={summary['lr']:g} is too large for this data: full-batch gradient descent "
            f"on it is stable only for optim.lr < {summary['max_stable_lr']:.2g}, and smaller "
            f"batches need less."
        )
    else:
        speed = f", {summary['rows_per_second']:,.0f} rows/s" if summary.get("rows_per_second") else ""
        lines.append(
            f"{summary['status'].capitalize()} after {summary['epochs']} epochs "
            f"({summary['steps']} steps, {summary['seconds']:.2f} s{speed})."
        )
        where = "the training rows " if summary.get("val_loss") is not None else "the whole data set"
        lines.append(f"  loss on {where}  {summary['final_loss']:.6g}")
        lines.append(
            f"  optimal loss (least squares) {summary['optimal_loss']:.6g}   ratio {_ratio(summary['loss_ratio'])}x"
        )
        if summary.get("val_loss") is not None:
            lines.append(f"  loss on the validation rows  {summary['val_loss']:.6g}")
        for target, row, bias in zip(summary["target_names"][:SHOWN_TARGETS], summary["weights"], summary["bias"]):
            terms = [f"{w:+.4g}*{f}" for f, w in zip(summary["feature_names"], row)]
            if len(terms) > SHOWN_TERMS:
                terms = terms[: SHOWN_TERMS - 1] + [f"... ({len(terms)} weights in summary.json)"]
            lines.append(f"  {target} = {' '.join(terms)} {bias:+.4g}")
        if len(summary["target_names"]) > SHOWN_TARGETS:
            lines.append(f"  ... and {len(summary['target_names']) - SHOWN_TARGETS} more targets in summary.json")
    shown = _shown_path(run_dir)
    lines.append(f"  run folder: {shown}")
    lines.append(f"  view it:    tensorboard --logdir {shown}")
    if summary["status"] == "interrupted" and (run_dir / "checkpoints" / "last.ckpt").is_file():
        lines.append(f"  continue:   python train.py resume={shown}")
    return os.linesep.join(lines)
