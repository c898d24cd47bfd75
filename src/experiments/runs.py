"""Reading run folders: their summaries, loss curves and trained models. Every file is read as data;
nothing a run folder names is imported or called."""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from experiments.errors import UserError

if TYPE_CHECKING:
    from experiments.module import RegressionModule

STATUS_ORDER = {"ok": 0, "interrupted": 1, "diverged": 2, "failed": 3}


@dataclass
class Run:
    """One run's summary.json, where it lies, and what was overridden to make it."""

    path: Path
    summary: dict[str, Any]
    overrides: str
    modified: float = 0.0  # when its summary.json was written
    curve: list[tuple[int, float]] = field(default_factory=list)

    @property
    def sort_key(self) -> tuple[int, float]:
        """Finished runs by final loss, then interrupted, diverged and failed ones."""
        loss = self.summary.get("final_loss")
        rank = STATUS_ORDER.get(self.summary.get("status"), len(STATUS_ORDER))
        return rank, loss if loss is not None and math.isfinite(loss) else math.inf


def find_runs(paths: list[Path]) -> list[Path]:
    """Every run folder at or below `paths`, each once, in order: folders with a summary.json, and
    job folders Hydra made (`.hydra/overrides.yaml`) whose job ended without one."""
    found: dict[Path, None] = {}
    for path in paths:
        path = path.parent if path.name == "summary.json" else path
        markers = [path / "summary.json", path / ".hydra" / "overrides.yaml"]
        if not any(marker.is_file() for marker in markers):
            markers = [*path.rglob("summary.json"), *path.rglob(".hydra/overrides.yaml")]
        for run_dir in sorted(
            {m.parent.parent if m.name == "overrides.yaml" else m.parent for m in markers if m.is_file()}
        ):
            found[run_dir.resolve()] = None
    return list(found)


def read_overrides(run_dir: Path) -> str:
    """The command-line overrides that made this run, as Hydra recorded them ("defaults" if none)."""
    import yaml

    recorded = run_dir / ".hydra" / "overrides.yaml"
    items = yaml.safe_load(recorded.read_text()) if recorded.is_file() else None
    return ",".join(items) if items else "defaults"


def read_summary(run_dir: Path) -> tuple[dict[str, Any], float]:
    """The run's summary.json and when it was written; for a job that wrote none, or an unreadable
    one, a summary that says so."""
    path = run_dir / "summary.json"
    if not path.is_file():
        modified = (run_dir / ".hydra").stat().st_mtime
        return {
            "status": "failed",
            "error": "no summary.json: the job was killed, crashed, or is still running",
        }, modified
    try:
        summary = json.loads(path.read_text())
        if not isinstance(summary, dict):
            raise ValueError("not a JSON object")
    except ValueError as error:
        summary = {"status": "failed", "error": f"unreadable summary.json: {error}"}
    return summary, path.stat().st_mtime


def read_loss_curve(run_dir: Path) -> list[tuple[int, float]]:
    """The whole-data loss per epoch (`train/full_loss`) from the run's TensorBoard files."""
    from experiments.events import read_scalar_series

    curve = {}
    for path in sorted(run_dir.glob("events.out.tfevents.*")):
        curve.update(read_scalar_series(path, "train/full_loss"))
    return sorted(curve.items())


def load_runs(paths: list[Path], curves: bool = True) -> list[Run]:
    """The runs at or below `paths`, best (lowest final loss) first; failed and diverged runs last."""
    runs = []
    for run_dir in find_runs(paths):
        summary, modified = read_summary(run_dir)
        runs.append(
            Run(run_dir, summary, read_overrides(run_dir), modified, read_loss_curve(run_dir) if curves else [])
        )
    return sorted(runs, key=lambda run: run.sort_key)


def load_trained_module(run_dir: str | Path) -> tuple["RegressionModule", list[str], list[str]]:
    """The trained module of a run folder, in evaluation mode, and its feature and target names.
    Rebuilt from the project's own model kinds and the checkpoint's tensors, loaded with
    `weights_only=True`: a checkpoint or config from elsewhere cannot run code."""
    import torch

    from experiments.models import MODEL_KINDS
    from experiments.module import RegressionModule
    from experiments.scaling import Scaler

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(
            f"run={run_dir}: there is no such run folder; runs are in outputs/runs/<stamp>/ and "
            f"outputs/multirun/<stamp>/<job>/."
        )
    path = run_dir / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise UserError(f"{run_dir} has no checkpoints/last.ckpt: the run did not finish (see its summary.json).")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        names = checkpoint["RegressionDataModule"]
        feature_names, target_names = list(names["feature_names"]), list(names["target_names"])
        state, kind = checkpoint["state_dict"], checkpoint["model_kind"]
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same answer
        raise UserError(
            f"{path} is not a checkpoint this tool can read ({type(error).__name__}); "
            f"it may be corrupted or from an older version. Train the run again."
        ) from None
    if kind not in MODEL_KINDS:
        raise UserError(
            f"{path} holds a model of kind {kind!r}, which this tool does not know; it knows "
            f"{', '.join(sorted(MODEL_KINDS))}."
        )
    model = MODEL_KINDS[kind](len(feature_names), len(target_names))
    scaler = Scaler(len(feature_names), len(target_names)) if "scaler.feature_mean" in state else None
    module = RegressionModule(model, scaler=scaler)
    try:
        module.to(state["model.weight"].dtype).load_state_dict(state)
    except (KeyError, RuntimeError) as error:  # tensors whose names or shapes do not match the model
        raise UserError(
            f"{path} does not hold the tensors of a {kind} from {len(feature_names)} features to "
            f"{len(target_names)} targets ({type(error).__name__}); train the run again."
        ) from None
    return module.eval(), feature_names, target_names
