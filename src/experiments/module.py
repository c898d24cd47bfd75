"""The LightningModule: mean squared error on an injected model."""

import inspect
import math

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

from experiments.data import MiniBatches
from experiments.scaling import Scaler


class RegressionModule(pl.LightningModule):
    """Trains `model` to minimise the mean squared error, the tutorials' loss
    (`torch.sum(diff * diff) / diff.numel()` is exactly `F.mse_loss`).

    The optimizer over `model`'s parameters is injected too, so the update rule is configuration,
    not code. With a `scaler` the model sees standardized batches, and `predict` maps its outputs
    back to the data's units.

    Each Lightning batch is a chunk of mini-batches (see `experiments.data`), and `training_step`
    steps through them in the tutorials' own loop: zero the gradients, forward, loss, backward,
    step. Lightning's per-batch machinery, which costs more than such a step, then runs once a
    chunk, while it still runs the epochs, devices, precision, logging, checkpoints and Ctrl-C.
    The epoch's mean batch loss is kept as a tensor, without a `.item()` per step, and read in the
    data's units by `EpochRecorder` once per epoch.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None, scaler: Scaler | None = None) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.model = model
        self.optimizer = optimizer
        self.scaler = scaler
        self.steps = 0  # optimizer steps taken
        self._step_needs_closure = optimizer is not None and _requires_closure(optimizer)
        self._chunk_losses: list[torch.Tensor] = []  # this epoch's, one sum a chunk
        self._epoch_batches = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """Predictions in the data's units for features in the data's units."""
        if self.scaler is None:
            return self.model(features)
        return self.scaler.unscale_targets(self.model(self.scaler.scale_features(features)))

    def original_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's weight (targets x features) and bias in the data's units."""
        weight, bias = self.model.weight.detach(), self.model.bias.detach()
        return self.scaler.original_weights(weight, bias) if self.scaler is not None else (weight, bias)

    def on_train_epoch_start(self) -> None:
        self._chunk_losses, self._epoch_batches = [], 0

    def training_step(self, mini_batches: MiniBatches, chunk_index: int) -> None:
        losses = [self._step(features, targets) for features, targets in mini_batches]
        if losses:  # one sum a chunk: adding up every step's loss as it comes costs a tensor op a step
            self._chunk_losses.append(torch.stack(losses).sum())
        self._epoch_batches += len(losses)
        self.steps += len(losses)

    def _step(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """One optimizer step on one mini-batch; returns its loss before the step (see `_evaluate`).
        An optimizer whose step takes a closure (LBFGS) evaluates the loss as often as it needs;
        the others step after one evaluation, as in the tutorials' loop."""
        if not self._step_needs_closure:
            loss, reported = self._evaluate(features, targets)
            self.optimizer.step()
            return reported
        first: list[torch.Tensor] = []

        def closure() -> torch.Tensor:
            loss, reported = self._evaluate(features, targets)
            if not first:
                first.append(reported)
            return loss

        self.optimizer.step(closure)
        return first[0]

    def _evaluate(self, features: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero the gradients, then the loss and its gradients; returns the loss to minimise and the
        loss to report (in the data's units, if standardized: the mean over targets of each one's
        mean squared error)."""
        self.optimizer.zero_grad()
        predictions = self.model(features)
        loss = F.mse_loss(predictions, targets)
        loss.backward()
        if self.scaler is None:
            return loss, loss.detach()
        return loss, (((predictions.detach() - targets) ** 2).mean(dim=0) * self.scaler.target_std ** 2).mean()

    def mean_epoch_loss(self) -> float:
        """The epoch's mean batch loss, in the data's units."""
        if not self._chunk_losses:
            return math.nan
        return sum(loss.item() for loss in self._chunk_losses) / self._epoch_batches

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer


def _requires_closure(optimizer: torch.optim.Optimizer) -> bool:
    """Whether `optimizer.step` must be given a closure that re-evaluates the loss (LBFGS)."""
    closure = inspect.signature(optimizer.step).parameters.get("closure")
    return closure is not None and closure.default is inspect.Parameter.empty
