"""The LightningModule: mean squared error on an injected model."""

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
        self.epoch_loss_sum = torch.zeros(())
        self.epoch_batches = 0

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
        self.epoch_loss_sum = torch.zeros((), device=self.device)
        self.epoch_batches = 0

    def training_step(self, mini_batches: MiniBatches, chunk_index: int) -> None:
        loss_sum, steps = self.epoch_loss_sum, 0
        for features, targets in mini_batches:
            loss_sum = loss_sum + self._step(features, targets)
            steps += 1
        self.epoch_loss_sum, self.epoch_batches, self.steps = loss_sum, self.epoch_batches + steps, self.steps + steps

    def _step(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """One optimizer step on one mini-batch; returns its loss before the step, per target in the
        data's units if standardized. The loss is computed in a closure, which LBFGS calls several
        times and the other optimizers once."""
        optimizer, losses = self.optimizer, []

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            predictions = self.model(features)
            loss = F.mse_loss(predictions, targets)
            loss.backward()
            if not losses:
                losses.append(loss.detach() if self.scaler is None else
                              ((predictions.detach() - targets) ** 2).mean(dim=0) * self.scaler.target_std ** 2)
            return loss

        optimizer.step(closure)
        return losses[0]

    def mean_epoch_loss(self) -> float:
        """The epoch's mean batch loss, in the data's units."""
        return (self.epoch_loss_sum / max(self.epoch_batches, 1)).mean().item()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer
