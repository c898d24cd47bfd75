"""What a run measures once per epoch, and how it shows progress."""

import math
import sys
import time
from collections import deque
from typing import Any

import lightning.pytorch as pl
import torch
from tensorboard.compat.proto.summary_pb2 import Summary
from tqdm.auto import tqdm

from experiments.module import RegressionModule

CONDITION_WARNING = 1e6


class EpochRecorder(pl.Callback):
    """Evaluates the model on the whole training set before training and after every epoch, the
    number the tutorials print, and logs it to TensorBoard beside the closed-form optimum, their
    ratio, the epoch's mean batch loss and every weight and bias by name (`weights/apples/temp`).

    A loss that stops being finite, or grows to `DIVERGED_GROWTH` times its value before training,
    ends training at that epoch: a diverged run is a result. (Gradient descent with a stable
    learning rate never comes near that; with a slightly too large one the loss grows geometrically
    and would take many epochs to overflow.) At the end, or when interrupted, it logs `hparams` with
    the final loss and ratio as their metrics (TensorBoard's HPARAMS tab), then a picture of the fit.

    The whole-data loss comes from the data's `Moments` (see `experiments.reference`): exact, in
    float64, and as quick for 20 million rows as for 15. An epoch's numbers go to TensorBoard as one
    event (Lightning's logger writes one per number). The events are written together every
    `WRITE_SECONDS` (or `WRITE_EVENTS` epochs), and at the end, and the writer is waited for:
    TensorBoard's writer checksums each event in pure Python on a thread of its own, and woken
    every epoch it held the training up by more than a small-data epoch takes; together they cost
    about 80 us each. Flushing then also puts them on disk within a second, where TensorBoard's
    writer would flush every two minutes.
    """

    DIVERGED_GROWTH = 1e3
    WRITE_SECONDS = 1.0
    WRITE_EVENTS = 1000  # the logger's queue is made this long, so handing them over never waits

    def __init__(self, hparams: dict[str, Any]) -> None:
        self.hparams = hparams
        self.optimal_loss = math.nan
        self.losses: list[float] = []  # whole-data loss, [0] before training, [e] after epoch e
        self.val_loss: float | None = None  # on the held-out rows, after the last epoch
        self.diverged_at_epoch: int | None = None
        self.train_seconds = 0.0  # in the epochs, their measuring and logging included; not in set-up
        self._epoch_started = 0.0
        self._unwritten: deque[tuple[int, float, dict[str, float]]] = deque()  # (epoch, wall time, metrics)
        self._write_after = 0.0

    def ratio(self, loss: float) -> float:
        """How many times the optimal loss `loss` is (1.0 = as good as least squares)."""
        return loss / self.optimal_loss if self.optimal_loss > 0 else math.inf

    def _record(self, trainer: pl.Trainer, module: RegressionModule, epoch: int) -> float:
        data = trainer.datamodule
        weights, bias = module.original_weights()
        loss = data.moments.loss(weights, bias)
        self.losses.append(loss)
        metrics = {"train/full_loss": loss, "train/optimal_loss": self.optimal_loss,
                   "train/loss_ratio": self.ratio(loss)}
        if epoch > 0:
            metrics["train/loss"] = module.mean_epoch_loss()
        if data.val_moments is not None:
            self.val_loss = data.val_moments.loss(weights, bias)
            metrics["val/loss"] = self.val_loss
        metrics.update(_named("weights", "bias", weights, bias, data.feature_names, data.target_names))
        self._unwritten.append((epoch, time.time(), metrics))
        if len(self._unwritten) >= self.WRITE_EVENTS or time.perf_counter() >= self._write_after:
            self._write(trainer)
        return loss

    def _write(self, trainer: pl.Trainer) -> None:
        """Writes the epochs recorded since the last call, and waits for the writer to finish them.
        Each epoch leaves `_unwritten` once handed to the writer, so the final write after a Ctrl-C,
        which most often lands in the wait, repeats none (at most the one in hand at that instant)."""
        while self._unwritten:
            epoch, wall_time, metrics = self._unwritten[0]
            _log_scalars(trainer, metrics, step=epoch, wall_time=wall_time)
            self._unwritten.popleft()
        trainer.logger.experiment.flush()
        self._write_after = time.perf_counter() + self.WRITE_SECONDS

    def on_train_start(self, trainer: pl.Trainer, pl_module: RegressionModule) -> None:
        data = trainer.datamodule
        self.optimal_loss = data.reference.loss
        if data.reference.condition > CONDITION_WARNING:
            advice = ("use optim=lbfgs with +trainer.precision=64" if data.scaler is not None else
                      "use data.standardize=true, and optim=lbfgs with +trainer.precision=64")
            print(f"Warning: the features are badly conditioned (condition number {data.reference.condition:.2g}), "
                  f"so gradient descent will approach the optimum slowly; {advice}.", file=sys.stderr)
        if hasattr(data.source, "true_weights"):  # synthetic data: what training should find
            _log_scalars(trainer, _named("true/weights", "true/bias", *data.source.true_weights(), data.feature_names,
                                         data.target_names), step=0)
        self._record(trainer, pl_module, epoch=0)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: RegressionModule) -> None:
        self._epoch_started = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: RegressionModule) -> None:
        epoch = trainer.current_epoch + 1
        loss = self._record(trainer, pl_module, epoch)  # its .item() waits for the device to finish
        self.train_seconds += time.perf_counter() - self._epoch_started
        if not math.isfinite(loss) or loss > self.DIVERGED_GROWTH * self.losses[0]:
            self.diverged_at_epoch = epoch
            trainer.should_stop = True

    def _log_final(self, trainer: pl.Trainer) -> None:
        """The epochs not yet written, waited for as part of training, then the run's hparams."""
        started = time.perf_counter()
        self._write(trainer)
        self.train_seconds += time.perf_counter() - started
        epochs, final_loss = len(self.losses) - 1, self.losses[-1]
        final = {"final/loss": final_loss, "final/loss_ratio": self.ratio(final_loss)}
        trainer.logger.log_hyperparams(self.hparams, metrics=final, step=epochs)

    def on_exception(self, trainer: pl.Trainer, pl_module: RegressionModule, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt) and self.losses:
            self._log_final(trainer)
        else:  # what was measured before the error is kept
            self._write(trainer)

    @torch.no_grad()
    def on_train_end(self, trainer: pl.Trainer, pl_module: RegressionModule) -> None:
        self._log_final(trainer)
        if self.diverged_at_epoch is None:
            from experiments.figures import fit_figure  # matplotlib is imported only here

            data = trainer.datamodule
            sample = data.sample
            figure = fit_figure(sample.features, sample.targets, pl_module.predict(sample.features), data.feature_names,
                                data.target_names)
            trainer.logger.experiment.add_figure("fit", figure, global_step=len(self.losses) - 1)


def _named(weights_tag: str, bias_tag: str, weights: torch.Tensor, bias: torch.Tensor, feature_names: list[str],
           target_names: list[str]) -> dict[str, float]:
    """`{weights_tag}/{target}/{feature}` and `{bias_tag}/{target}` for a weight matrix and bias."""
    named = {}
    for target, row, b in zip(target_names, weights.tolist(), bias.tolist()):
        named.update({f"{weights_tag}/{target}/{feature}": w for feature, w in zip(feature_names, row)})
        named[f"{bias_tag}/{target}"] = b
    return named


def _log_scalars(trainer: pl.Trainer, metrics: dict[str, float], step: int, wall_time: float | None = None) -> None:
    """All of `metrics` as one TensorBoard event: one record to write, not one per number."""
    values = [Summary.Value(tag=tag, simple_value=value) for tag, value in metrics.items()]
    trainer.logger.experiment.file_writer.add_summary(Summary(value=values), global_step=step, walltime=wall_time)


class EpochProgressBar(pl.callbacks.ProgressBar):
    """One bar over the epochs, showing the whole-data loss. Lightning's default bar redraws
    per step, which on the tutorials' data (one to three steps an epoch) is mostly flicker."""

    def __init__(self, recorder: EpochRecorder) -> None:
        super().__init__()
        self.recorder = recorder
        self.enabled = True
        self.bar: tqdm | None = None

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.bar = tqdm(total=trainer.max_epochs, desc="Training", unit="epoch", disable=not self.enabled,
                        dynamic_ncols=True, leave=False,
                        bar_format="{l_bar}{bar}| {n:.6g}/{total} epochs [{elapsed}<{remaining}{postfix}]")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """Big data: move through the epoch a chunk of mini-batches at a time."""
        if batch_idx + 1 < trainer.num_training_batches:
            self.bar.update(trainer.current_epoch + (batch_idx + 1) / trainer.num_training_batches - self.bar.n)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.bar.set_postfix_str(f"loss {self.recorder.losses[-1]:.5g}", refresh=False)
        self.bar.update(trainer.current_epoch + 1 - self.bar.n)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.bar.close()
