"""The closed-form answer every run is measured against, in one pass over data of any size.

Everything here comes from the R factor of the QR decomposition of `[X 1 Y]` (features, a column
of ones for the bias, targets) in float64, built a block of rows at a time
(R = qr([R; next rows]).R), so memory stays at one block however many rows there are. From R
alone: the least-squares weights, their loss, the condition number, the largest stable learning
rate, and the loss of *any* weights: `[X 1] w - Y = Q (R[:, :p] w - R[:, p:])` with Q's columns
orthonormal, so a (p+t) x (p+t) product gives the whole data set's mean squared error.
"""

import math
from dataclasses import dataclass

import torch

BLOCK_ROWS = 16384


class QRFactor:
    """The R factor of a data set's `[features 1 targets]`: all a linear model's loss on it depends on."""

    def __init__(self, features: torch.Tensor, targets: torch.Tensor) -> None:
        self.num_features, self.numel, self.rows = features.shape[1], targets.numel(), len(features)
        width = self.num_features + 1 + targets.shape[1]
        r = torch.zeros(0, width, dtype=torch.float64, device=features.device)
        for start in range(0, len(features), BLOCK_ROWS):
            x, y = features[start : start + BLOCK_ROWS], targets[start : start + BLOCK_ROWS]
            ones = torch.ones(len(x), 1, dtype=torch.float64, device=x.device)
            r = torch.linalg.qr(torch.cat([r, torch.cat([x.double(), ones, y.double()], dim=1)]), mode="r")[1]
        self.r = r.cpu()

    def loss(self, weights: torch.Tensor, bias: torch.Tensor) -> float:
        """The mean squared error of `features @ weights.T + bias` over every row, in float64
        (infinite for weights that have overflowed)."""
        solution = torch.cat([weights.T, bias[None, :]]).to("cpu", torch.float64)
        p = self.num_features + 1
        loss = torch.linalg.vector_norm(self.r[:, :p] @ solution - self.r[:, p:]).item() ** 2 / self.numel
        return math.inf if math.isnan(loss) else loss


@dataclass
class LeastSquares:
    """The least-squares optimum of a data set (float64, on the CPU), and how hard gradient descent's job is."""

    weights: torch.Tensor  # (targets, features), in the data's units
    bias: torch.Tensor  # (targets,)
    loss: float  # the mean squared error of the optimum: the lowest any linear model can reach
    condition: float  # of the design the model trains on (standardized or whitened, if it is)
    max_stable_lr: float  # full-batch gradient descent diverges above this learning rate


def least_squares(qr: QRFactor, design_transform: torch.Tensor | None = None) -> LeastSquares:
    """The optimum of the data `qr` factors. With `design_transform` (standardization's or whitening's, see
    `Scaler.design_transform`), the condition number and stable learning rate are those of the
    design the model sees. gelsd (SVD-based) finds the optimum even when features are collinear.
    """
    p = qr.num_features + 1
    design, rhs = qr.r[:, :p], qr.r[:, p:]
    solution = torch.linalg.lstsq(design, rhs, driver="gelsd").solution  # (p, targets)
    if design_transform is not None:
        design = design @ design_transform.cpu()
    singular = torch.linalg.svdvals(design)
    weights, bias = solution[:-1].T.contiguous(), solution[-1].clone()
    # The loss's Hessian is 2 / numel * D^T D (F.mse_loss averages over every element), and gradient
    # descent converges exactly when lr < 2 / its largest eigenvalue = numel / sigma_max(D)^2.
    return LeastSquares(
        weights=weights,
        bias=bias,
        loss=qr.loss(weights, bias),
        condition=(singular[0] / singular[-1]).item() if len(singular) == p else float("inf"),
        max_stable_lr=qr.numel / singular[0].item() ** 2,
    )


def hessian_factor(qr: QRFactor, design_transform: torch.Tensor | None = None) -> torch.Tensor:
    """An upper-triangular S (p x p) with SᵀS the Hessian of the mean squared error with respect to one
    target's [weights, bias], for the design the model sees (transformed by `design_transform`, as in
    `least_squares`): 2 / numel * DᵀD, as F.mse_loss averages over every element; targets do not mix."""
    p = qr.num_features + 1
    design = qr.r[:, :p] if design_transform is None else qr.r[:, :p] @ design_transform.cpu()
    return torch.linalg.qr(design * math.sqrt(2 / qr.numel), mode="r")[1]


def dependent_column(r: torch.Tensor) -> int | None:
    """The first column of the upper-triangular R factor `r` that is, to float64's precision, a
    combination of the columns before it (a constant or repeated column, or one past the rows); None if none is."""
    diagonal = r.diagonal().abs()
    tolerance = r.shape[1] * torch.finfo(torch.float64).eps * torch.linalg.matrix_norm(r, 2)
    small = (diagonal <= tolerance).nonzero().flatten().tolist()
    if small:
        return small[0]
    return None if len(diagonal) == r.shape[1] else len(diagonal)
