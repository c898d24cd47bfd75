"""The LightningModule: mean squared error on an injected model."""

import lightning.pytorch as pl
import torch
from torch import nn

from experiments.scaling import Scaler


class RegressionModule(pl.LightningModule):
    """Trains `model` to minimise the mean squared error, the tutorials' loss
    (`torch.sum(diff * diff) / diff.numel()` is exactly `F.mse_loss`).

    The optimizer over `model`'s parameters is injected too, so the update rule is configuration,
    not code. With a `scaler` the model sees standardized batches, and `predict` maps its outputs
    back to the data's units. The epoch's mean batch loss is kept per target as a tensor, without a
    `.item()` per step, and read in the data's units by `EpochRecorder` once per epoch.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: Scaler | None = None) -> None:
        super().__init__()
        self.model = model
        self.optimizer = optimizer
        self.scaler = scaler
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

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        features, targets = batch
        per_target = ((self.model(features) - targets) ** 2).mean(dim=0)
        self.epoch_loss_sum = self.epoch_loss_sum + per_target.detach()
        self.epoch_batches += 1
        return per_target.mean()

    def mean_epoch_loss(self) -> float:
        """The epoch's mean batch loss, in the data's units."""
        per_target = self.epoch_loss_sum / max(self.epoch_batches, 1)
        if self.scaler is not None:
            per_target = per_target * self.scaler.target_std.to(per_target.dtype) ** 2
        return per_target.mean().item()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer
