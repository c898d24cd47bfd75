"""Standardization (z-scores) that the rest of the code never has to see.

The model trains on standardized features and targets, so one learning rate suits any units; every
number a user reads (losses, weights, bias, predictions) is mapped back to the data's own units.
"""

import torch
from torch import nn

from experiments.tables import Table


class Scaler(nn.Module):
    """Means and standard deviations of the training split, kept as float64 buffers so they travel
    with the model to its device and into its checkpoint. A constant column keeps scale 1."""

    def __init__(self, num_features: int, num_targets: int) -> None:
        super().__init__()
        for name, size in (
            ("feature_mean", num_features),
            ("feature_std", num_features),
            ("target_mean", num_targets),
            ("target_std", num_targets),
        ):
            self.register_buffer(name, torch.zeros(size, dtype=torch.float64))

    def fit(self, table: Table) -> "Scaler":
        """Take the means and standard deviations of `table`'s columns, in place; returns the scaler."""
        for prefix, values in (("feature", table.features), ("target", table.targets)):
            mean, std = _mean_std(values)
            constant = std <= 1e-12 * values.abs().amax(dim=0).double().clamp(min=1.0)  # rounding noise, not spread
            getattr(self, f"{prefix}_mean").copy_(mean)
            getattr(self, f"{prefix}_std").copy_(torch.where(constant, torch.ones_like(std), std))
        return self

    def scale_features(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.feature_mean.to(x.dtype)) / self.feature_std.to(x.dtype)

    def scale_targets(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.target_mean.to(y.dtype)) / self.target_std.to(y.dtype)

    def unscale_targets(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.target_std.to(y.dtype) + self.target_mean.to(y.dtype)

    def design_transform(self) -> torch.Tensor:
        """T (float64) with `[x 1] @ T = [(x - mean) / std, 1]`: the design the model sees, from the data's."""
        features = len(self.feature_mean)
        transform = torch.eye(features + 1, dtype=torch.float64, device=self.feature_mean.device)
        transform[:features, :features] = torch.diag(1 / self.feature_std)
        transform[features, :features] = -self.feature_mean / self.feature_std
        return transform

    def original_weights(self, weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The standardized model's weight (t, f) and bias (t) in the data's units:
        y = ts * (W (x - fm) / fs + b) + tm  =  (ts W / fs) x + (tm + ts b - (ts W / fs) fm)."""
        w = weight.double() * self.target_std[:, None] / self.feature_std[None, :]
        b = self.target_mean + self.target_std * bias.double() - w @ self.feature_mean
        return w, b


def _mean_std(values: torch.Tensor, block_rows: int = 1 << 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Column means and (population) standard deviations in float64, two passes of bounded memory."""
    blocks = values.split(block_rows)
    mean = sum(block.double().sum(dim=0) for block in blocks) / len(values)
    if len(values) < 2:
        return mean, torch.ones_like(mean)
    variance = sum(((block.double() - mean) ** 2).sum(dim=0) for block in blocks) / len(values)
    return mean, variance.sqrt()
