"""Reading run folders: their summaries, loss curves and trained models. Every file is read as data;
nothing a run folder names is imported or called."""

import json
import math
import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from experiments import history
from experiments.errors import UserError
from experiments.history import History

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
    def sort_key(self) -> tuple[int, float, float]:
        """Finished runs by how close to their optimum they came (the loss ratio: runs on different data
        compare fairly; on the same data it orders as the final loss does), then interrupted, diverged and
        failed ones."""
        rank = STATUS_ORDER.get(self.summary.get("status"), len(STATUS_ORDER))
        ratio, loss = (self.summary.get(key) for key in ("loss_ratio", "final_loss"))
        return rank, *(
            value if isinstance(value, (int, float)) and math.isfinite(value) else math.inf for value in (ratio, loss)
        )

    @property
    def data_set(self) -> tuple | None:
        """What tells the data this run trained on from other data, as its summary records it: the `data`
        choice, the column names, the rows and the optimum (the same data has the same optimum; 6 digits,
        so float noise does not split it). Standardizing does not change it: losses are in the data's
        units. None for a run whose summary records none of it (a failed job)."""
        summary = self.summary
        names = [summary.get(key) for key in ("feature_names", "target_names")]
        optimum = summary.get("optimal_loss")
        key = (
            summary.get("data") if isinstance(summary.get("data"), str) else None,
            *(tuple(map(str, value)) if isinstance(value, list) else None for value in names),
            summary.get("rows"),
            float(f"{optimum:.6g}") if isinstance(optimum, (int, float)) else None,
        )
        return None if all(value is None for value in key) else key


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
    """The command-line overrides that made this run, as Hydra recorded them ("defaults" if none);
    for a file that is not a YAML list of overrides, a warning on stderr and a label that says so."""
    import yaml

    recorded = run_dir / ".hydra" / "overrides.yaml"
    if not recorded.exists():
        return "defaults"
    try:
        items = yaml.safe_load(read_run_file(recorded, limit=1 << 20))  # data only: no tags that make objects
        if items is not None and not isinstance(items, list):
            raise ValueError(f"it holds {_brief(items)}, not a list of overrides")
        odd = [item for item in items or [] if not isinstance(item, str)]
        if odd:
            raise ValueError(f"it lists {_brief(odd[0])}, not an override such as optim.lr=0.01")
    except yaml.MarkedYAMLError as error:
        mark = f" at line {error.problem_mark.line + 1}" if error.problem_mark else ""
        _warn_unreadable(recorded, f"not valid YAML: {error.problem or error.context}{mark}", "without its overrides")
        return UNREADABLE_OVERRIDES
    except (OSError, ValueError, RecursionError, yaml.YAMLError) as error:
        _warn_unreadable(recorded, _reason(error), "without its overrides")
        return UNREADABLE_OVERRIDES
    items = [item for item in items or [] if not item.startswith("resume=")]  # how it was made, not continued
    return ",".join(items) if items else "defaults"


UNREADABLE_OVERRIDES = "(unreadable .hydra/overrides.yaml)"  # a run's label where its overrides cannot be read

# What compare.py and the sweep summary read of a summary.json, and what each must be.
SUMMARY_NUMBERS = ("final_loss", "optimal_loss", "loss_ratio", "lr", "seconds", "val_loss", "max_stable_lr")
SUMMARY_WHOLE_NUMBERS = ("epochs", "diverged_at_epoch", "steps", "rows")


def read_summary(run_dir: Path) -> tuple[dict[str, Any], float]:
    """The run's summary.json and when it was written; for a job that wrote none, or an unreadable
    one (with a warning on stderr), a summary that says so."""
    path = run_dir / "summary.json"
    if not path.exists():
        modified = (run_dir / ".hydra").stat().st_mtime
        return {
            "status": "failed",
            "error": "no summary.json: the job was killed, crashed, or is still running",
        }, modified
    modified = 0.0
    try:
        modified = path.stat().st_mtime
        text = read_run_file(path, limit=256 << 20)
        if not text.strip():
            raise ValueError("the file is empty")
        summary = json.loads(text)
        problem = _summary_problem(summary)
        if problem:
            raise ValueError(problem)
    except (OSError, ValueError, RecursionError) as error:
        reason = _reason(error)
        _warn_unreadable(path, reason, "as failed")
        summary = {"status": "failed", "error": f"unreadable summary.json: {reason}"}
    return summary, modified


def _summary_problem(summary: Any) -> str | None:
    """What makes `summary` unlike any summary.json a run writes, in words; None if nothing."""
    if not isinstance(summary, dict):
        return f"it holds {_brief(summary)}, not a JSON object"
    status = summary.get("status")
    if not isinstance(status, str) or status not in STATUS_ORDER:
        return f'"status" is {_brief(status)}, not one of {", ".join(STATUS_ORDER)}'
    for key in SUMMARY_NUMBERS + SUMMARY_WHOLE_NUMBERS:
        value = summary.get(key)
        whole = key in SUMMARY_WHOLE_NUMBERS
        if value is not None and not _is_number(value, whole):
            return f'"{key}" is {_brief(value)}, not {"a whole number" if whole else "a finite number"}'
    if not isinstance(summary.get("error"), (str, type(None))):
        return f'"error" is {_brief(summary.get("error"))}, not text'
    return None


def _is_number(value: Any, whole: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # a whole number too large for a float
        return False


def _brief(value: Any) -> str:
    """A value read from a file, named in a few words: its JSON/YAML kind, and itself if short."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**40 else "a number of over 40 digits"
    return text if len(text) <= 40 else f"{text[:30]}... ({len(text)} characters)"


def _reason(error: BaseException) -> str:
    """An error reading a run's file, in one line."""
    if isinstance(error, UnicodeDecodeError):
        return f"not UTF-8 text (byte {error.object[error.start]:#04x} at offset {error.start})"
    if isinstance(error, RecursionError):
        return "nested too deeply"
    if isinstance(error, OSError):
        return error.strerror or type(error).__name__
    lines = str(error).splitlines()
    return lines[0] if lines else type(error).__name__


def _warn_unreadable(path: Path, reason: str, listed: str) -> None:
    """One line on stderr: `path` cannot be read, and how its run is listed instead."""
    print(f"Warning: {path} is unreadable ({reason}); its run is listed {listed}.", file=sys.stderr)


def read_run_file(path: Path, limit: int) -> str:
    """The text of a small file a run wrote, read as a regular file of at most `limit` bytes (a FIFO
    put in its place is not opened, nor waited on); OSError or ValueError (UnicodeDecodeError) otherwise."""
    if not stat.S_ISREG(path.stat().st_mode):
        raise ValueError("not a regular file")
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with open(descriptor, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise ValueError("not a regular file")
        data = file.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"larger than {limit >> 20} MiB, which no run writes")
    return data.decode("utf-8")


def read_landscape(run_dir: Path) -> dict[str, Any] | None:
    """The run's landscape.json (its path on the loss surface, see `experiments.landscape`), or None
    if it has none or the file is not one."""
    try:
        record = json.loads(read_run_file(run_dir / "landscape.json", limit=64 << 20))
        for target in record["targets"].values():
            if len(target["center"]) != 2 or len(target["curvature"]) != 2 or not isinstance(target["path"], list):
                return None
        return record if len(record["axes"]) == 2 and isinstance(record["design"], str) else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None


def read_history(run_dir: Path, columns: list[str] | None = None) -> History | None:
    """The run's history.csv (only `columns`, if given; see `experiments.history`), or None if it has
    none or the file is not one."""
    try:
        return history.parse(read_run_file(run_dir / history.HISTORY, limit=256 << 20), columns)
    except (OSError, ValueError, RecursionError):
        return None


def read_loss_curve(run_dir: Path) -> list[tuple[int, float]]:
    """The whole-data loss per epoch that the run kept (`train/full_loss`): from its history.csv, or
    for a run made before there was one, from its TensorBoard files."""
    from experiments.events import read_scalar_series

    kept = read_history(run_dir, ["train/full_loss"])
    if kept is not None:
        return history.curve(kept)
    curve = {}
    for path in sorted(run_dir.glob("events.out.tfevents.*")):
        if path.is_file():  # a regular file: a pipe in its place would be waited on forever
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

    from experiments.csv_table import available_memory
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
    if not path.exists():
        raise UserError(f"{run_dir} has no checkpoints/last.ckpt: the run did not finish (see its summary.json).")
    if not path.is_file():
        raise UserError(f"{path} is not a regular file; give a run folder as training wrote it.")
    available = available_memory()
    if available is not None and path.stat().st_size > available // 2:
        raise UserError(
            f"{path} is {path.stat().st_size / 2**30:.1f} GiB, more than a linear model's checkpoint can be, and "
            f"more than the memory available allows reading; give a run folder as training wrote it."
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        names = checkpoint["RegressionDataModule"]
        feature_names, target_names = names["feature_names"], names["target_names"]
        state, kind = checkpoint["state_dict"], checkpoint["model_kind"]
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same answer
        raise UserError(
            f"{path} is not a checkpoint this tool can read ({type(error).__name__}); "
            f"it may be corrupted or from an older version. Train the run again."
        ) from None
    if not isinstance(kind, str) or kind not in MODEL_KINDS:
        raise UserError(
            f"{path} holds a model of kind {kind!r}, which this tool does not know; it knows "
            f"{', '.join(sorted(MODEL_KINDS))}."
        )
    problem = _checkpoint_problem(feature_names, target_names, state)
    if problem:
        raise UserError(f"{path} is damaged: {problem}. Train the run again.")
    model = MODEL_KINDS[kind](len(feature_names), len(target_names))
    whitened = "scaler.feature_whitening" in state
    scaler = Scaler(len(feature_names), len(target_names), whitened) if "scaler.feature_mean" in state else None
    module = RegressionModule(model, scaler=scaler)
    try:
        module.to(state["model.weight"].dtype).load_state_dict(state)
    except (KeyError, RuntimeError) as error:  # tensors whose names or shapes do not match the model
        raise UserError(
            f"{path} does not hold the tensors of a {kind} from {len(feature_names)} features to "
            f"{len(target_names)} targets ({type(error).__name__}); train the run again."
        ) from None
    return module.eval(), feature_names, target_names


def _checkpoint_problem(feature_names: Any, target_names: Any, state: Any) -> str | None:
    """What is wrong with a checkpoint's column names and tensors, in words; None if nothing is."""
    import torch

    for what, names in (("feature", feature_names), ("target", target_names)):
        if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, str) for n in names):
            return f"its {what} names are {names!r}, not a list of column names"
        if len(set(names)) != len(names):
            return f"it names a {what} twice ({', '.join(names)})"
    if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
        return "its state_dict is not a set of tensors"
    for key, tensor in state.items():
        if tensor.dtype not in (torch.float32, torch.float64):
            return f"its {key} holds {str(tensor.dtype).removeprefix('torch.')} numbers, not float32 or float64"
    weight = state.get("model.weight")
    expected = (len(target_names), len(feature_names))
    if weight is not None and tuple(weight.shape) != expected:
        return (
            f"its model.weight is {' x '.join(map(str, weight.shape)) or 'a single number'}, but it names "
            f"{len(feature_names)} features ({', '.join(feature_names)}) and {len(target_names)} targets "
            f"({', '.join(target_names)}), which need {expected[0]} x {expected[1]}"
        )
    return None
