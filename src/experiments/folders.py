"""One writer per folder: a run or sweep folder that already holds one is refused (unless the
command continues it with `resume=`), and a folder being written is locked, so that two processes
never write one folder at once. A Hydra callback (registered in conf/config.yaml), because Hydra
writes its `.hydra/` files into the folder before the task starts."""

import fcntl
import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from experiments.errors import UserError
from experiments.files import disk_trouble

_held: list[int] = []  # the locked folders' descriptors, open until the process ends


class OneWriterPerFolder(Callback):
    """Claims the run's or the sweep's folder before Hydra writes into it; a refusal ends the command
    here (Hydra turns an exception in a callback into a warning and goes on)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _claim_or_exit(Path(config.hydra.run.dir), config.get("resume"), "run", "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _claim_or_exit(Path(config.hydra.sweep.dir), config.get("resume"), "sweep", "hydra.sweep.dir")


def _claim_or_exit(folder: Path, resume: str | None, what: str, key: str) -> None:
    try:
        claim(folder, resume, what, key)
    except UserError as error:
        print(f"Error: {error}", file=sys.stderr)
        sys.exit(2)
    except OSError as error:
        print(f"Error: {disk_trouble(error)}", file=sys.stderr)
        sys.exit(1)


def claim(folder: Path, resume: str | None, what: str, key: str) -> None:
    """Make `folder` this process's to write, or refuse in one line that says what to do instead."""
    continued = resume is not None and Path(resume).resolve() == folder.resolve()
    if not continued and folder.is_dir() and any(folder.iterdir()):
        raise UserError(
            f"{folder} already holds a {what}; continue it with resume={folder}, or give the new {what} "
            f"a folder of its own ({key}=FOLDER, or leave {key} unset for a new one)."
        )
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released by the system when the process ends
    except BlockingIOError:
        os.close(descriptor)
        raise UserError(
            f"{folder} is being written by another command; wait for it to end, or use another folder."
        ) from None
    _held.append(descriptor)
