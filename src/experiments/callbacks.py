"""What a run measures once per epoch, and how it shows progress."""

import math
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from experiments.module import RegressionModule


class EpochRecorder(pl.Callback):
    """Evaluates the model on the whole training set before training and after every epoch, the
    number the tutorials print, and logs it to TensorBoard beside the closed-form optimum, their
    ratio, the epoch's mean batch loss and every weight and bias by name (`weights/apples/temp`).

    A loss that stops being finite, or grows to `DIVERGED_GROWTH` times its value before training,
    ends training at that epoch: a diverged run is a result. (Gradient descent with a stable
    learning rate never comes near that; with a slightly too large one the loss grows geometrically
    and would take many epochs to overflow.) At the end, or when interrupted, it logs `hparams` with
    the final loss and ratio as their metrics (TensorBoard's HPARAMS tab), then a picture of the fit.
    """

    DIVERGED_GROWTH = 1e3

    def __init__(self, feature_names: list[str], target_names: list[str], optimal_loss: float,
                 hparams: dict[str, Any]) -> None:
        self.feature_names, self.target_names = feature_names, target_names
        self.optimal_loss = optimal_loss
        self.hparams = hparams
        self.losses: list[float] = []  # whole-data loss, [0] before training, [e] after epoch e
        self.val_loss: float | None = None  # on the held-out rows, after the last epoch
        self.diverged_at_epoch: int | None = None

    def ratio(self, loss: float) -> float:
        """How many times the optimal loss `loss` is (1.0 = as good as least squares)."""
        return loss / self.optimal_loss if self.optimal_loss > 0 else math.inf

    @torch.no_grad()
    def _record(self, trainer: pl.Trainer, module: RegressionModule, epoch: int) -> float:
        data = trainer.datamodule
        loss = F.mse_loss(module.predict(data.features), data.targets).item()
        self.losses.append(loss)
        metrics = {"train/full_loss": loss, "train/optimal_loss": self.optimal_loss,
                   "train/loss_ratio": self.ratio(loss)}
        if epoch > 0:
            metrics["train/loss"] = module.mean_epoch_loss()
        if data.val_features is not None:
            self.val_loss = F.mse_loss(module.predict(data.val_features), data.val_targets).item()
            metrics["val/loss"] = self.val_loss
        weights, bias = (t.tolist() for t in module.original_weights())
        for target, row, b in zip(self.target_names, weights, bias):
            metrics.update({f"weights/{target}/{feature}": w for feature, w in zip(self.feature_names, row)})
            metrics[f"bias/{target}"] = b
        trainer.logger.log_metrics(metrics, step=epoch)
        return loss

    def on_train_start(self, trainer: pl.Trainer, pl_module: RegressionModule) -> None:
        self._record(trainer, pl_module, epoch=0)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: RegressionModule) -> None:
        epoch = trainer.current_epoch + 1
        loss = self._record(trainer, pl_module, epoch)
        if not math.isfinite(loss) or loss > self.DIVERGED_GROWTH * self.losses[0]:
            self.diverged_at_epoch = epoch
            trainer.should_stop = True

    def _log_final(self, trainer: pl.Trainer) -> None:
        epochs, final_loss = len(self.losses) - 1, self.losses[-1]
        final = {"final/loss": final_loss, "final/loss_ratio": self.ratio(final_loss)}
        trainer.logger.log_hyperparams(self.hparams, metrics=final, step=epochs)

    def on_exception(self, trainer: pl.Trainer, pl_module: RegressionModule, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt) and self.losses:
            self._log_final(trainer)

    @torch.no_grad()
    def on_train_end(self, trainer: pl.Trainer, pl_module: RegressionModule) -> None:
        self._log_final(trainer)
        if self.diverged_at_epoch is None:
            from experiments.figures import fit_figure  # matplotlib is imported only here

            data = trainer.datamodule
            figure = fit_figure(data.features, data.targets, pl_module.predict(data.features),
                                self.feature_names, self.target_names)
            trainer.logger.experiment.add_figure("fit", figure, global_step=len(self.losses) - 1)


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
                        dynamic_ncols=True, leave=False)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.bar.set_postfix_str(f"loss {self.recorder.losses[-1]:.5g}", refresh=False)
        self.bar.update(1)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.bar.close()
