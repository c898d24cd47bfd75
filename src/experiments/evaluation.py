"""How good any weights are on the data: one object, built once when the data is set up."""

import math

import torch

from experiments.landscape import Plane, loss_plane
from experiments.least_squares import LeastSquares, QRFactor, hessian_factor, least_squares
from experiments.scaling import Scaler
from experiments.tables import Table

SAMPLE_ROWS = 2000  # rows kept for the picture of the fit
BADLY_CONDITIONED = 1e6


class Evaluator:
    """Everything a run measures its model against: the least-squares optimum of the training rows,
    and a `meter` that reads the model's loss on the training and held-out rows, exactly and in
    float64 from their QR factors (the training rows': `train_qr`, if already made), in the data's
    units. Also keeps an evenly spread sample of the training rows for pictures, and, for synthetic
    data, the weights the rows were drawn from."""

    def __init__(
        self,
        train: Table,
        val: Table | None = None,
        scaler: Scaler | None = None,
        true_weights: tuple[torch.Tensor, torch.Tensor] | None = None,
        train_qr: QRFactor | None = None,
    ) -> None:
        self.feature_names, self.target_names = train.feature_names, train.target_names
        self.scaler = scaler
        self._train = train_qr if train_qr is not None else QRFactor(train.features, train.targets)
        self._val = QRFactor(val.features, val.targets) if val is not None else None
        self.optimum: LeastSquares = least_squares(self._train, scaler.design_transform() if scaler else None)
        rows = spread_rows(len(train), SAMPLE_ROWS).to(train.features.device)
        self.sample = Table(train.features[rows], train.targets[rows], train.feature_names, train.target_names)
        self.true_weights = true_weights

    def meter(self, weight: torch.Tensor, bias: torch.Tensor) -> "ParameterMeter":
        """A meter of models' own weights (members x targets x features) and biases (members x
        targets), standardized if the data is, which training changes in place."""
        return ParameterMeter(weight, bias, [qr for qr in (self._train, self._val) if qr is not None], self.scaler)

    def plane(self) -> Plane:
        """The plane each target's loss surface is drawn on (see `experiments.landscape`)."""
        return loss_plane(self._train, self.optimum, self.scaler, self.feature_names)

    def hessian_factor(self) -> torch.Tensor:
        """S with SᵀS the Hessian of the training rows' loss in the model's coordinates (see
        `least_squares.hessian_factor`): what Newton's method solves with."""
        return hessian_factor(self._train, self.scaler.design_transform() if self.scaler is not None else None)

    def ratio(self, loss: float) -> float:
        """How many times the optimal loss `loss` is (1.0: as good as least squares)."""
        return loss / self.optimum.loss if self.optimum.loss > 0 else math.inf

    def conditioning_warning(self) -> str | None:
        """Advice when the features, as the model sees them, are too badly conditioned for gradient descent."""
        if self.optimum.condition <= BADLY_CONDITIONED:
            return None
        advice = (
            "use data.whiten=true, or optim=newton or optim=lbfgs with trainer.precision=64"
            if self.scaler is not None
            else "use data.whiten=true (or data.standardize=true), or optim=newton or optim=lbfgs with "
            "trainer.precision=64"
        )
        return (
            f"Warning: the features are badly conditioned (condition number {self.optimum.condition:.2g}), so "
            f"gradient descent will approach the optimum slowly; {advice}."
        )


class ParameterMeter:
    """Measures models' weights and biases, as training changes them in place, in a few tensor
    operations on reused buffers on the parameters' device: it is read every epoch. `weight` is
    (members x targets x features) and `bias` (members x targets), one member for a single run.
    `read()` gives each member's `[w_1 ... w_f, b]` per target in the data's units, and its loss on
    each QR-factored set of rows."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, sets: list[QRFactor], scaler: Scaler | None) -> None:
        members, targets, features = weight.shape
        like = {"dtype": torch.float64, "device": weight.device}
        self._parameters = [weight.detach(), bias.detach()[:, :, None]]  # views: they follow the training
        self._members, self._sets_count = members, len(sets)
        # One buffer read out at once: each member's [W | b] in the data's units, then each set's residual norms.
        size = members * targets * (features + 1)
        self._readout = torch.empty(size + len(sets) * members, **like)
        self._data = self._readout[:size].view(members, targets, features + 1)
        self._norms = self._readout[size:].view(len(sets), members)
        self._model = self._data if scaler is None else torch.empty_like(self._data)  # [W | b] as the model holds them
        if scaler is not None:  # [W | b] in data units = ([W | b] @ T^T) * target_std + [0 | target_mean]
            self._transform = scaler.design_transform().T.to(**like)
            self._target_std = scaler.target_std.to(**like)[:, None]
            self._target_mean = torch.zeros(targets, features + 1, **like)
            self._target_mean[:, features] = scaler.target_mean.to(**like)
        self._solution = self._data.view(members * targets, features + 1).T  # [W^T; b^T] of every member
        # Per set: the design and minus the targets (once per member) of its R factor, and a residual buffer.
        self._sets = [
            (
                qr.r[:, : features + 1].to(**like),
                -qr.r[:, features + 1 :].to(**like).repeat(1, members),
                torch.empty(len(qr.r), members * targets, **like),
            )
            for qr in sets
        ]
        self._numels = [qr.numel for qr in sets]

    def read(self) -> tuple[list[list[float]], list[list[float]]]:
        """Each member's weights and biases in the data's units, and its loss on each set (infinite once overflowed)."""
        torch.cat(self._parameters, dim=2, out=self._model)
        if self._model is not self._data:
            torch.addcmul(self._target_mean, self._model @ self._transform, self._target_std, out=self._data)
        for norm, (design, minus_targets, residual) in zip(self._norms, self._sets):
            residuals = torch.addmm(minus_targets, design, self._solution, out=residual)
            torch.linalg.vector_norm(residuals.view(len(design), self._members, -1), dim=(0, 2), out=norm)
        values = self._readout.tolist()  # one copy from the device, and the only wait for it
        size = len(values) - self._sets_count * self._members
        step = size // self._members
        weights = [values[start : start + step] for start in range(0, size, step)]
        losses = [
            [
                norm**2 / n if not math.isnan(norm) else math.inf
                for norm, n in zip(values[size + m :: self._members], self._numels)
            ]
            for m in range(self._members)
        ]
        return weights, losses


def spread_rows(rows: int, count: int) -> torch.Tensor:
    """Indices of up to `count` of `rows` rows spread evenly from the first to the last (all of
    them if there are no more); whole-number arithmetic, exact at any size."""
    count = min(rows, count)
    return torch.arange(count, dtype=torch.int64) * (rows - 1) // max(count - 1, 1)
