"""One writer per folder: a run or sweep folder that already holds one is refused (unless the
command continues it with `resume=`), and a folder being written is locked, so that two processes
never write one folder at once. A Hydra callback (registered in conf/config.yaml), because Hydra
writes its `.hydra/` files into the folder before the task starts."""

import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from experiments.errors import Exit, UserError
from experiments.files import disk_trouble
from experiments.resume import resume_point

_held: list[int] = []  # the locked folders' descriptors, open until the process ends


class OneWriterPerFolder(Callback):
    """Claims the run's or the sweep's folder before Hydra writes into it; a refusal ends the command
    here (Hydra turns an exception in a callback into a warning and goes on)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _claim_or_exit(Path(config.hydra.run.dir), config.get("resume"), "run", "hydra.run.dir")
        if config.get("resume") is not None:  # before Hydra writes the new settings into the folder
            _or_exit(
                lambda: resume_point(Path(config.hydra.run.dir), config.trainer.max_epochs, config.get("schedule"))
            )

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _claim_or_exit(Path(config.hydra.sweep.dir), config.get("resume"), "sweep", "hydra.sweep.dir")


def _claim_or_exit(folder: Path, resume: str | None, what: str, key: str) -> None:
    _or_exit(lambda: claim(folder, resume, what, key))


def _or_exit(check: Callable[[], Any]) -> None:
    """Run `check`; a refusal ends the command with its one line (an `Exit`, which Hydra lets through)."""
    try:
        check()
    except UserError as error:
        raise Exit(2, error) from None
    except OSError as error:
        raise Exit(1, UserError(disk_trouble(error))) from None


def claim(folder: Path, resume: str | None, what: str, key: str) -> None:
    """Make `folder` this process's to write, or refuse in one line that says what to do instead."""
    continued = resume is not None and Path(resume).resolve() == folder.resolve()
    if not continued and folder.is_dir() and any(folder.iterdir()):
        held = (
            "a sweep" if (folder / "multirun.yaml").is_file() else "a run" if (folder / ".hydra").is_dir() else "files"
        )
        advice = f"continue it with resume={folder}, or give" if held != "files" else "give"
        raise UserError(
            f"{folder} already holds {held}; {advice} the new {what} a folder of its own ({key}=FOLDER, or "
            f"leave {key} unset for a new one)."
        )
    folder.mkdir(parents=True, exist_ok=True)
    if (folder.parent / "multirun.yaml").is_file():  # a sweep's job: the sweep may be writing it
        os.close(_lock(folder.parent, fcntl.LOCK_SH))
    _held.append(_lock(folder, fcntl.LOCK_EX))


def _lock(folder: Path, kind: int) -> int:
    """A descriptor of `folder` holding a lock of `kind` on it (the system releases it when the
    process ends), or one line saying that another command is writing there."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, kind | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise UserError(
            f"{folder} is being written by another command; wait for it to end, or use another folder."
        ) from None
    return descriptor


@contextmanager
def released_after() -> Iterator[None]:
    """The folders claimed within, unlocked on leaving: for the Python API, whose process goes on after
    its runs (and may resume one of them)."""
    held = len(_held)
    try:
        yield
    finally:
        for descriptor in _held[held:]:
            os.close(descriptor)
        del _held[held:]


def remove_if_unused(run_dir: Path) -> None:
    """Remove a run folder that holds nothing but Hydra's copy of the config (a run stopped or
    refused before it wrote anything)."""
    if run_dir.is_dir() and all(path.name == ".hydra" for path in run_dir.iterdir()):
        shutil.rmtree(run_dir)
