"""Standardization (z-scores) that the rest of the code never has to see.

The model trains on standardized features and targets, so one learning rate suits any units; every
number a user reads (losses, weights, bias, predictions) is mapped back to the data's own units.
"""

import torch
from torch import nn

from experiments.datasets import Table


class Scaler(nn.Module):
    """Means and standard deviations of the training split, kept as float64 buffers so they travel
    with the model to its device and into its checkpoint. A constant column keeps scale 1."""

    def __init__(self, num_features: int, num_targets: int) -> None:
        super().__init__()
        for name, size in (("feature_mean", num_features), ("feature_std", num_features),
                           ("target_mean", num_targets), ("target_std", num_targets)):
            self.register_buffer(name, torch.zeros(size, dtype=torch.float64))

    @classmethod
    def fit(cls, table: Table) -> "Scaler":
        scaler = cls(table.features.shape[1], table.targets.shape[1])
        for prefix, values in (("feature", table.features.double()), ("target", table.targets.double())):
            std = values.std(dim=0, unbiased=False) if len(values) > 1 else torch.ones(values.shape[1])
            getattr(scaler, f"{prefix}_mean").copy_(values.mean(dim=0))
            constant = std <= 1e-12 * values.abs().amax(dim=0).clamp(min=1.0)  # rounding noise, not spread
            getattr(scaler, f"{prefix}_std").copy_(torch.where(constant, torch.ones_like(std), std))
        return scaler

    def scale_features(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.double() - self.feature_mean) / self.feature_std).to(x.dtype)

    def scale_targets(self, y: torch.Tensor) -> torch.Tensor:
        return ((y.double() - self.target_mean) / self.target_std).to(y.dtype)

    def unscale_targets(self, y: torch.Tensor) -> torch.Tensor:
        return (y.double() * self.target_std + self.target_mean).to(y.dtype)

    def original_weights(self, weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The standardized model's weight (t, f) and bias (t) in the data's units:
        y = ts * (W (x - fm) / fs + b) + tm  =  (ts W / fs) x + (tm + ts b - (ts W / fs) fm)."""
        w = weight.double() * self.target_std[:, None] / self.feature_std[None, :]
        b = self.target_mean + self.target_std * bias.double() - w @ self.feature_mean
        return w, b
