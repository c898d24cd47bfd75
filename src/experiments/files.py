"""Files written whole, and disk trouble in words.

A file another program reads (a checkpoint, summary.json, a sweep's summaries, an error record) is
written to a temporary name in its own folder and renamed into place: a reader, a crash or `kill -9`
at any instant sees the old file, the new one or none, never part of one. A rename within one
folder never crosses file systems, so it is atomic (a temporary file in $TMPDIR would not be).
"""

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

from experiments import stopping

# What each kind of disk trouble means for the user, after the system's own words.
ADVICE = {
    errno.ENOSPC: "the disk is full; free some space or write elsewhere",
    errno.EDQUOT: "the disk quota is used up; free some space or write elsewhere",
    errno.EROFS: "the file system is read-only; write elsewhere",
    errno.EACCES: "you may not write there; write elsewhere or change the folder's permissions",
    errno.EPERM: "you may not write there; write elsewhere or change the folder's permissions",
    errno.ENOTDIR: "a file stands where a folder should be; move it away or write elsewhere",
    errno.EEXIST: "a file stands where a folder should be; move it away or write elsewhere",
    errno.ENOENT: "a folder it needs has vanished; write elsewhere or run again",
}
DISK_ERRNOS = set(ADVICE)


class DiskError(OSError):
    """A file could not be written for a reason of the disk, not of the run: the command stops."""


def disk_trouble(error: OSError) -> str:
    """An OSError of the disk in one line: the path, the system's words and what to do, e.g.
    "cannot write outputs/runs/x/summary.json: No space left on device; the disk is full; ..."."""
    path = error.filename or "a file"
    advice = ADVICE.get(error.errno, "write elsewhere")
    where = "(hydra.run.dir=FOLDER for a run, hydra.sweep.dir=FOLDER for a sweep)"
    return f"cannot write {path}: {error.strerror or error}; {advice} {where}."


def is_disk_trouble(error: BaseException) -> bool:
    """Whether `error` is the disk's doing (full, read-only, a file in the way), not the run's."""
    return isinstance(error, OSError) and error.errno in DISK_ERRNOS


def write_whole(path: str | Path, content: bytes | str | Callable[[IO[bytes]], None]) -> Path:
    """Write `content` (bytes, text, or a function that writes to the open file) to `path`, in a
    folder that exists, whole: through a temporary file in the same folder, renamed into place. A
    signal meanwhile waits until it is done; on any failure the temporary file is removed and `path`
    is as it was."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    with stopping.whole():
        try:
            with open(temporary, "wb") as file:
                if callable(content):
                    content(file)
                else:
                    file.write(content.encode() if isinstance(content, str) else content)
                stopping.moment(f"write/{path.name}")
            os.replace(temporary, path)
        except BaseException as error:
            temporary.unlink(missing_ok=True)
            if isinstance(error, OSError) and error.filename is None:  # a failed write names no file
                raise naming(error, path) from None
            raise
    return path


def naming(error: OSError, path: str | Path) -> OSError:
    """The same error, naming `path` (the system names none for a write that fails)."""
    return type(error)(error.errno, error.strerror, str(path))
