"""Standardization (z-scores) and whitening that the rest of the code never has to see.

The model trains on standardized features and targets, so one learning rate suits any units; every
number a user reads (losses, weights, bias, predictions) is mapped back to the data's own units.
Whitening also decorrelates the standardized features, so the loss surface is round.
"""

import math

import torch
from torch import nn

from experiments.errors import UserError
from experiments.least_squares import QRFactor, dependent_column
from experiments.tables import Table


class Scaler(nn.Module):
    """Means and standard deviations of the training split, kept as float64 buffers so they travel
    with the model to its device and into its checkpoint. A constant column keeps scale 1.
    With `whiten`, also `feature_whitening` (see `whiten`): the features the model sees are
    `((x - mean) / std) @ feature_whitening`."""

    def __init__(self, num_features: int, num_targets: int, whiten: bool = False) -> None:
        super().__init__()
        for name, size in (
            ("feature_mean", num_features),
            ("feature_std", num_features),
            ("target_mean", num_targets),
            ("target_std", num_targets),
        ):
            self.register_buffer(name, torch.zeros(size, dtype=torch.float64))
        whitening = torch.eye(num_features, dtype=torch.float64) if whiten else None
        self.register_buffer("feature_whitening", whitening)  # None: not in the state dict

    def fit(self, table: Table) -> "Scaler":
        """Take the means and standard deviations of `table`'s columns, in place; returns the scaler."""
        for prefix, values in (("feature", table.features), ("target", table.targets)):
            mean, std = _mean_std(values)
            constant = std <= 1e-12 * values.abs().amax(dim=0).double().clamp(min=1.0)  # rounding noise, not spread
            getattr(self, f"{prefix}_mean").copy_(mean)
            getattr(self, f"{prefix}_std").copy_(torch.where(constant, torch.ones_like(std), std))
        return self

    def whiten(self, qr: QRFactor, feature_names: list[str]) -> None:
        """Set `feature_whitening` from the R factor of the training rows (fitted first), so that the
        whitened features z have zᵀz = rows · I and mean 0: with the column of ones, the model's design
        has orthogonal columns of equal norm, and the loss's Hessian is a multiple of the identity."""
        f = qr.num_features
        # [1 X] = Q R[:, ones first]: its R factor below the first row is the R factor of the centered features.
        centered = torch.linalg.qr(qr.r[:, [f, *range(f)]], mode="r")[1][1:, 1:]
        standardized = centered / self.feature_std.cpu()
        dependent = dependent_column(standardized)
        if dependent is not None:
            raise UserError(
                f"data.whiten=true needs features that are linearly independent in the training rows, but "
                f"{feature_names[dependent]} is (to float64's precision) constant or a combination of the features "
                f"before it, or the rows are too few; leave it out with data.features=[...], or use "
                f"data.standardize=true instead."
            )
        identity = torch.eye(f, dtype=torch.float64)
        inverse = torch.linalg.solve_triangular(standardized, identity, upper=True)
        self.feature_whitening.copy_(inverse * math.sqrt(qr.rows))

    def scale_features(self, x: torch.Tensor) -> torch.Tensor:
        standardized = (x - self.feature_mean.to(x.dtype)) / self.feature_std.to(x.dtype)
        return standardized if self.feature_whitening is None else standardized @ self.feature_whitening.to(x.dtype)

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
        if self.feature_whitening is not None:
            transform[:, :features] = transform[:, :features] @ self.feature_whitening
        return transform

    def original_weights(self, weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The standardized model's weight (t, f) and bias (t) in the data's units:
        y = ts * (W (x - fm) / fs + b) + tm  =  (ts W / fs) x + (tm + ts b - (ts W / fs) fm).
        A whitened model's weight on the standardized features is W @ feature_whitening^T."""
        weight = weight.double() if self.feature_whitening is None else weight.double() @ self.feature_whitening.T
        w = weight * self.target_std[:, None] / self.feature_std[None, :]
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
