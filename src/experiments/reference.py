"""The closed-form answer every run is measured against."""

import torch


def least_squares(features: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Least-squares weights (t, f), bias (t) and their mean squared error, solved in float64
    with a column of ones for the bias: the lowest loss any linear model can reach on this data."""
    x = features.detach().to("cpu", torch.float64)
    y = targets.detach().to("cpu", torch.float64)
    design = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], dim=1)
    # gelsd (SVD-based) copes with the badly conditioned tables users bring.
    solution = torch.linalg.lstsq(design, y, driver="gelsd").solution  # (f + 1, t)
    loss = torch.mean((design @ solution - y) ** 2).item()
    return solution[:-1].T.contiguous(), solution[-1].clone(), loss


def max_stable_lr(features: torch.Tensor, targets: torch.Tensor) -> float:
    """The learning rate above which full-batch gradient descent on the mean squared error diverges.

    The loss is quadratic with Hessian H = 2 / (n * t) * X^T X (X with the bias column; `F.mse_loss`
    averages over all n * t elements), and gradient descent converges exactly when lr < 2 / max eig(H).
    Mini-batches are noisier, so they need a learning rate somewhat below this.
    """
    x = features.detach().to("cpu", torch.float64)
    design = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], dim=1)
    hessian = 2 / targets.numel() * design.T @ design
    return 2 / torch.linalg.eigvalsh(hessian)[-1].item()
