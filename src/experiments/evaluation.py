"""How good any weights are on the data: one object, built once when the data is set up."""

import math

import torch

from experiments.least_squares import LeastSquares, QRFactor, least_squares
from experiments.scaling import Scaler
from experiments.tables import Table

SAMPLE_ROWS = 2000  # rows kept for the picture of the fit
BADLY_CONDITIONED = 1e6


class Evaluator:
    """Measures weights in the data's units on the training rows and the held-out rows, exactly and in
    float64 from their QR factors, against the least-squares optimum of the training rows. Also keeps
    an evenly spread sample of the training rows for pictures, and, for synthetic data, the weights
    the rows were drawn from."""

    def __init__(
        self,
        train: Table,
        val: Table | None = None,
        scaler: Scaler | None = None,
        true_weights: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        self.feature_names, self.target_names = train.feature_names, train.target_names
        self.standardized = scaler is not None
        self._train = QRFactor(train.features, train.targets)
        self._val = QRFactor(val.features, val.targets) if val is not None else None
        stats = (scaler.feature_mean, scaler.feature_std) if scaler is not None else ()
        self.optimum: LeastSquares = least_squares(self._train, *stats)
        rows = spread_rows(len(train), SAMPLE_ROWS).to(train.features.device)
        self.sample = Table(train.features[rows], train.targets[rows], train.feature_names, train.target_names)
        self.true_weights = true_weights

    @property
    def has_val(self) -> bool:
        return self._val is not None

    def loss(self, weights: torch.Tensor, bias: torch.Tensor) -> float:
        """Mean squared error on every training row."""
        return self._train.loss(weights, bias)

    def val_loss(self, weights: torch.Tensor, bias: torch.Tensor) -> float | None:
        """Mean squared error on the held-out rows; None without them."""
        return self._val.loss(weights, bias) if self._val is not None else None

    def ratio(self, loss: float) -> float:
        """How many times the optimal loss `loss` is (1.0: as good as least squares)."""
        return loss / self.optimum.loss if self.optimum.loss > 0 else math.inf

    def conditioning_warning(self) -> str | None:
        """Advice when the features, as the model sees them, are too badly conditioned for gradient descent."""
        if self.optimum.condition <= BADLY_CONDITIONED:
            return None
        advice = (
            "use optim=lbfgs with trainer.precision=64"
            if self.standardized
            else "use data.standardize=true, and optim=lbfgs with trainer.precision=64"
        )
        return (
            f"Warning: the features are badly conditioned (condition number {self.optimum.condition:.2g}), so "
            f"gradient descent will approach the optimum slowly; {advice}."
        )


def spread_rows(rows: int, count: int) -> torch.Tensor:
    """Indices of up to `count` of `rows` rows spread evenly from the first to the last (all of
    them if there are no more); whole-number arithmetic, exact at any size."""
    count = min(rows, count)
    return torch.arange(count, dtype=torch.int64) * (rows - 1) // max(count - 1, 1)
