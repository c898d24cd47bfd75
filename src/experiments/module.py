"""The LightningModule: mean squared error on an injected model."""

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn


class RegressionModule(pl.LightningModule):
    """Trains `model` to minimise the mean squared error, the tutorials' loss
    (`torch.sum(diff * diff) / diff.numel()` is exactly `F.mse_loss`).

    The optimizer over `model`'s parameters is injected too, so the update rule is configuration,
    not code. The mean batch loss of the epoch is kept as a tensor,
    without a `.item()` per step, and read by `EpochRecorder` once per epoch.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        super().__init__()
        self.model = model
        self.optimizer = optimizer
        self.epoch_loss_sum = torch.zeros(())
        self.epoch_batches = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def on_train_epoch_start(self) -> None:
        self.epoch_loss_sum = torch.zeros((), device=self.device)
        self.epoch_batches = 0

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        features, targets = batch
        loss = F.mse_loss(self.model(features), targets)
        self.epoch_loss_sum += loss.detach()
        self.epoch_batches += 1
        return loss

    def mean_epoch_loss(self) -> float:
        return (self.epoch_loss_sum / max(self.epoch_batches, 1)).item()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer
