"""The loss surface a run moves on, exactly, and the path its weights took across it.

The mean squared error is quadratic in the weights, so the R factor of `[X 1 Y]` gives it
everywhere. Each target's weights and bias train independently of the other targets', so each
target has its own surface over a plane of two coordinates `a`:

- one feature: the plane of the weight and the bias themselves, in the data's units;
- more: the plane through the optimum along the two directions in which the loss, as the model
  sees it (standardized or whitened, if the data is), curves most and least: the first and last
  eigenvectors of its Hessian, from the SVD of the model's design.

On it, a target's loss is `optimal_loss + (a - center)^T curvature (a - center)`, in the data's
units. The plane depends only on the data and how it is transformed, so every run on the same
data shares it, and a sweep overlays its jobs' paths on one surface (trajectories.png).
"""

import bisect
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from experiments.files import write_whole
from experiments.least_squares import LeastSquares, QRFactor
from experiments.scaling import Scaler

MAX_PATH_POINTS = 1000  # kept of a path: every point up to here, then spread on a log scale
STEPWISE_STEPS = 16  # a path has a point per step when an epoch takes 2 to this many steps, else per epoch


def every_step(steps_per_epoch: int) -> bool:
    """Whether a path records each step (a few mini-batches an epoch) rather than each epoch."""
    return 1 < steps_per_epoch <= STEPWISE_STEPS


@dataclass
class Plane:
    """Where each target's loss surface is drawn, and how to put weights on it (float64, on the CPU)."""

    axes: tuple[str, str]  # what the two coordinates measure
    design: str  # how the features were transformed: raw, standardized or whitened
    optimum: torch.Tensor  # (targets, features + 1): each target's optimal [w b], in the data's units
    basis: torch.Tensor  # (targets, features + 1, 2): [w b] = optimum + basis @ (a - center)
    projection: torch.Tensor  # (targets, 2, features + 1): a = center + projection @ ([w b] - optimum)
    from_model: torch.Tensor  # (targets, 2, features + 1): a = from_model @ [w b] + from_model_offset,
    from_model_offset: torch.Tensor  # (targets, 2)             for the model's own [w b]
    center: torch.Tensor  # (targets, 2): the optimum's coordinates
    curvature: torch.Tensor  # (targets, 2, 2)
    optimal_loss: list[float]  # of each target, in the data's units
    directions: torch.Tensor | None  # (features + 1, 2): the Hessian's eigenvectors, in the model's [w b]
    eigenvalues: torch.Tensor | None  # (2,): theirs, of the Hessian of the model's loss

    def project(self, values: list[float] | torch.Tensor) -> torch.Tensor:
        """The coordinates (targets, 2) of `[w_1 ... w_f, b]` per target, in the data's units (as
        `ParameterMeter.read` gives them, flat)."""
        weights = torch.as_tensor(values, dtype=torch.float64).view(self.optimum.shape)
        return self.center + (self.projection @ (weights - self.optimum)[:, :, None])[:, :, 0]

    def project_model(self, parameters: torch.Tensor) -> torch.Tensor:
        """The coordinates (..., targets, 2) of the model's own `[W | b]` (..., targets, features + 1)."""
        return (self.from_model @ parameters.double()[..., None])[..., 0] + self.from_model_offset


def loss_plane(qr: QRFactor, optimum: LeastSquares, scaler: Scaler | None, feature_names: list[str]) -> Plane:
    """The plane each target's loss surface is drawn on (see the module's docstring)."""
    features, targets = qr.num_features, qr.r.shape[1] - qr.num_features - 1
    p = features + 1
    rows = qr.numel / targets
    design = qr.r[:, :p]
    optimal = torch.cat([optimum.weights, optimum.bias[:, None]], dim=1)
    optimal_loss = [
        (torch.linalg.vector_norm(design @ optimal[t] - qr.r[:, p + t]).item() ** 2) / rows for t in range(targets)
    ]
    kind = "raw" if scaler is None else "standardized" if scaler.feature_whitening is None else "whitened"
    transform = scaler.design_transform().cpu() if scaler is not None else torch.eye(p, dtype=torch.float64)
    target_std = scaler.target_std.cpu() if scaler is not None else torch.ones(targets, dtype=torch.float64)
    target_mean = scaler.target_mean.cpu() if scaler is not None else torch.zeros(targets, dtype=torch.float64)
    # The model's [w b] is the data's target_std * transform @ [w b] + target_mean * (0 ... 0 1).
    to_data = target_std[:, None, None] * transform
    to_data_offset = torch.zeros(targets, p, dtype=torch.float64)
    to_data_offset[:, -1] = target_mean
    if features == 1:  # the weight and the bias themselves
        gram = design.T @ design / rows
        eye = torch.eye(2, dtype=torch.float64).expand(targets, 2, 2)
        return Plane(
            axes=(f"weight ({feature_names[0]})", "bias"),
            design=kind,
            optimum=optimal,
            basis=eye,
            projection=eye,
            from_model=to_data,
            from_model_offset=to_data_offset,
            center=optimal.clone(),
            curvature=gram.expand(targets, 2, 2).clone(),
            optimal_loss=optimal_loss,
            directions=None,
            eigenvalues=None,
        )
    _, singular, vh = torch.linalg.svd(design @ transform, full_matrices=False)
    directions = vh[[0, -1]].T.contiguous()  # steepest, flattest
    directions *= directions.gather(0, directions.abs().argmax(dim=0, keepdim=True)).sign()  # a fixed sign
    eigenvalues = singular[[0, -1]] ** 2 / rows  # of the model's mean squared error per target, halved
    basis = to_data @ directions
    # Orthogonal projection in the model's coordinates, where the directions are orthonormal.
    projection = directions.T @ torch.linalg.inv(to_data)
    return Plane(
        axes=("along the most curved direction", "along the least curved direction"),
        design=kind,
        optimum=optimal,
        basis=basis,
        projection=projection,
        from_model=projection @ to_data,
        from_model_offset=(projection @ (to_data_offset - optimal)[:, :, None])[:, :, 0],
        center=torch.zeros(targets, 2, dtype=torch.float64),
        curvature=torch.diag_embed(target_std[:, None] ** 2 * eigenvalues[None]),
        optimal_loss=optimal_loss,
        directions=directions,
        eigenvalues=2 * eigenvalues / targets,
    )


class WeightPath:
    """The model's `[W | b]` (..., targets, features + 1) at the points of a path: before training,
    then after each step or epoch. Kept as the model holds them, on its device, and put on the plane
    only when written. Every point is kept up to `MAX_PATH_POINTS`, then ever fewer (every 2nd, 4th,
    ...: about `MAX_PATH_POINTS / 2` more for each doubling of the path), so a long run stays small."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        state = state or {"indices": [], "parameters": [], "count": 0}
        self.indices: list[int] = list(state["indices"])  # of the points kept
        self.parameters: list[torch.Tensor] = list(state["parameters"])
        self.count: int = state["count"]  # points so far, kept or not
        self._stack = torch.zeros(0)

    def add(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        index, self.count = self.count, self.count + 1
        if index < MAX_PATH_POINTS or index % (1 << (index // MAX_PATH_POINTS).bit_length()) == 0:
            self.indices.append(index)
            self.parameters.append(torch.cat([weight.detach(), bias.detach()[..., None]], dim=-1))

    def state(self, final: torch.Tensor, member: int | None = None, count: int | None = None) -> dict[str, Any]:
        """The path as a checkpoint holds it, ending at its latest point (`count - 1`, by default
        the last added), whose `[W | b]` is `final`; of member `member` alone, for a sweep group's path."""
        count = self.count if count is None else count
        end = bisect.bisect_left(self.indices, count - 1)
        if len(self._stack) != len(self.parameters):  # stacked once for all the members finishing together
            self._stack = torch.stack([p.to(final.device) for p in self.parameters]) if self.parameters else final[:0]
        earlier = self._stack[:end] if end else final.detach()[None][:0]
        if member is not None and end:
            earlier = earlier[:, member]
        return {
            "indices": self.indices[:end] + [count - 1],
            "parameters": torch.cat([earlier, final.detach()[None].to(earlier)]),
            "count": count,
        }


def _thinned(indices: list[int]) -> list[int]:
    """Positions in `indices` (the kept points' numbers, ascending) of at most `MAX_PATH_POINTS`
    points to write: all, if so few; else points spread on a log scale, and always the first and last."""
    if len(indices) <= MAX_PATH_POINTS:
        return list(range(len(indices)))
    last = indices[-1]
    targets = torch.logspace(0, math.log10(last), MAX_PATH_POINTS, dtype=torch.float64).tolist()
    positions = {0, len(indices) - 1, *(bisect.bisect_left(indices, round(target)) for target in targets)}
    return sorted(position for position in positions if position < len(indices))


def landscape_record(
    plane: Plane, indices: list[int], parameters: torch.Tensor, target_names: list[str], each: str
) -> dict[str, Any]:
    """What landscape.json holds: the plane's surfaces and the path on them, from the model's
    `[W | b]` at the points `indices` (0: before training, then after each step or epoch, `each`),
    thinned to at most `MAX_PATH_POINTS`, each target's by name. Non-finite points (a diverged run's) are null."""
    kept = _thinned(indices)
    points = plane.project_model(parameters[kept].cpu()) if kept else torch.zeros(0, len(target_names), 2)
    finite = torch.isfinite(points).all(dim=-1).T.tolist()  # (targets, points)
    coordinates = points.transpose(0, 1).tolist()

    return {
        "axes": list(plane.axes),
        "design": plane.design,
        "each": each,  # step or epoch
        "points": [indices[k] for k in kept],  # the steps or epochs the path's points come after (0: the start)
        "targets": {
            name: {
                "optimal_loss": plane.optimal_loss[t],
                "center": plane.center[t].tolist(),
                "curvature": plane.curvature[t].tolist(),
                "path": [pair if ok else None for pair, ok in zip(coordinates[t], finite[t])],
            }
            for t, name in enumerate(target_names)
        },
    }


def write_landscape(run_dir: Path, record: dict[str, Any]) -> None:
    write_whole(run_dir / "landscape.json", json.dumps(record) + "\n")


def surface(target: dict[str, Any], a1: torch.Tensor, a2: torch.Tensor) -> torch.Tensor:
    """A target's loss (landscape.json's) at the grid points `(a1, a2)`."""
    center = torch.tensor(target["center"], dtype=torch.float64)
    curvature = torch.tensor(target["curvature"], dtype=torch.float64)
    offsets = torch.stack([a1 - center[0], a2 - center[1]], dim=-1)
    return target["optimal_loss"] + torch.einsum("...i,ij,...j->...", offsets, curvature, offsets)
