"""What the tests share: configs composed as the command line composes them, the commands run as a
user runs them, and TensorBoard files read by TensorBoard itself."""

import json
import subprocess
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

REPO = Path(__file__).resolve().parents[1]


def read_scalars(run_dir) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series in a run folder, as (step, value) pairs, read by TensorBoard itself."""
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def run_cli(*args: str, cwd: Path, script: str = "train.py") -> subprocess.CompletedProcess:
    """Run one of the repository's commands as a user would, from `cwd`."""
    return subprocess.run(
        [sys.executable, str(REPO / script), *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def summary(status: str = "ok", final_loss: float = 10.0, **more) -> dict:
    """The parts of a run's summary.json that compare.py shows."""
    return {
        "status": status,
        "diverged_at_epoch": None,
        "final_loss": final_loss,
        "optimal_loss": 0.9,
        "loss_ratio": 11.1,
        "epochs": 5,
        "lr": 1e-5,
        "seconds": 0.1,
        "error": None,
        **more,
    }


def make_run(folder: Path, overrides: str | bytes | None = "- optim.lr=1e-05\n", content: object = None) -> Path:
    """A run folder as training leaves it: summary.json (`content`, or a good summary; text or bytes
    are written as they are) and .hydra/overrides.yaml."""
    (folder / ".hydra").mkdir(parents=True)
    if overrides is not None:
        data = overrides if isinstance(overrides, bytes) else overrides.encode()
        (folder / ".hydra" / "overrides.yaml").write_bytes(data)
    content = summary() if content is None else content
    if isinstance(content, (str, bytes)):
        (folder / "summary.json").write_bytes(content if isinstance(content, bytes) else content.encode())
    else:
        (folder / "summary.json").write_text(json.dumps(content))
    return folder


def write_curve(folder: Path, losses: list[float]) -> None:
    """An event file in `folder` holding `losses` as the whole-data loss of epochs 0, 1, 2..., as training writes it."""
    from experiments.events import EventFile

    events = EventFile(folder)
    for epoch, loss in enumerate(losses):
        events.add_scalars({"train/full_loss": loss}, epoch, wall_time=float(epoch))
    events.close()
