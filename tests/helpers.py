"""What the tests share: configs composed as the command line composes them, the commands run as a
user runs them, and TensorBoard files read by TensorBoard itself."""

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
