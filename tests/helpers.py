"""What the tests share: configs composed as the command line composes them, the commands run as a
user runs them, and TensorBoard files read by TensorBoard itself."""

import shutil
import signal
import subprocess
import sys
import time
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


def interrupt_training(*args: str, cwd: Path, started: str) -> tuple[int, str]:
    """Run train.py as a user would, press Ctrl-C once training has written its first event file
    (`started`, a glob under `cwd`), and return the exit status and output. A run that has not
    exited a minute after Ctrl-C is killed and the scenario tried once more, so that an unlucky
    signal timing on a loaded machine is told apart from a shutdown that really hangs."""
    for _ in range(2):
        shutil.rmtree(cwd / "outputs", ignore_errors=True)  # a fresh start for the second try
        process = subprocess.Popen(
            [sys.executable, str(REPO / "train.py"), *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        deadline = time.monotonic() + 120
        while not list(cwd.glob(started)) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
        time.sleep(1.0)  # some epochs in
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=60)
            return process.returncode, output
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
    raise AssertionError(f"the run did not stop within a minute of Ctrl-C, twice:\n{output[-2000:]}")
