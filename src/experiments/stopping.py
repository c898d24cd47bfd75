"""Stopping on Ctrl-C (SIGINT) or SIGTERM at any moment, without a traceback or a half-written file.

While a run trains, the first signal asks it to stop at the end of the current epoch (`requested`),
so what it records (checkpoint, summary, TensorBoard) describes one state of the model, from which
`resume=` continues exactly. Outside training the signal stops the command at once, except inside
`whole()`, the writing of files, where it waits until the block ends. A second signal stops at once.
The command then exits with 128 + the signal's number: 130 for SIGINT, 143 for SIGTERM.

Sweeps run by worker processes (`hydra/launcher=joblib`) stop together: a signal to the main
process is passed on to the workers (unless Ctrl-C in the terminal reached them too), which stop
as the main process would, record their jobs and exit; the main process waits for them. A worker
never outlives it.

`moment(name)` marks the named moments at which the tests deliver a signal
(`EXPERIMENTS_SIGNAL_AT=name[:count]=SIGNAL`, e.g. `epoch_end:3=SIGTERM`).
"""

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType
from typing import NoReturn

SIGNALS = (signal.SIGINT, signal.SIGTERM)
# What submitit sends a Slurm job shortly before its time limit: record the job, then let submitit requeue it.
REQUEUE = signal.SIGUSR2
MAIN_PROCESS = "EXPERIMENTS_MAIN_PID"  # set by the command's process; its workers inherit it
POLL_SECONDS = 0.05
# A worker's second signal this soon after its first is the same stop delivered twice (to the whole
# process group, and passed on by the main process), not a second Ctrl-C.
SAME_STOP_SECONDS = 1.0


class Stopped(KeyboardInterrupt):
    """The command was stopped by `signum`. A KeyboardInterrupt, so that Lightning shuts down gracefully."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


_requeue: Callable[[int, FrameType | None], None] | None = None  # submitit's handler of REQUEUE
_received: int | None = None  # the first signal received
_count = 0  # signals received
_first_at = 0.0  # when the first arrived (time.monotonic)
_training = False  # a fit is running: the first signal stops it at the end of its epoch
_whole_depth = 0  # inside whole(): signals wait for the block to end
_pending = False  # a signal arrived inside whole() and waits to be raised


def exit_quietly_on_signal() -> None:
    """Until `install`: a signal ends the process at once, without a traceback (it has written nothing)."""
    for signum in SIGNALS:
        signal.signal(signum, lambda signum, frame: sys.exit(128 + signum))


def install_in_command() -> None:
    """At a command's start: this is the main process (its workers inherit that), handling signals."""
    os.environ[MAIN_PROCESS] = str(os.getpid())
    install()


def install() -> None:
    """Handle SIGINT and SIGTERM as this module describes (in the main thread); in a job that
    submitit may requeue, REQUEUE too."""
    global _requeue
    handler = signal.getsignal(REQUEUE)
    if in_worker() and callable(handler) and handler is not _handle:
        _requeue = handler
        signal.signal(REQUEUE, _handle)
    for signum in SIGNALS:
        signal.signal(signum, _handle)


def in_worker() -> bool:
    """Whether this process is a worker of the command's process (a joblib launcher's)."""
    return os.environ.get(MAIN_PROCESS, str(os.getpid())) != str(os.getpid())


def _handle(signum: int, frame: FrameType | None) -> None:
    global _received, _count, _pending, _first_at
    if in_worker() and _count and time.monotonic() - _first_at < SAME_STOP_SECONDS:
        return
    _received, _count = _received or signum, _count + 1
    _first_at = _first_at if _count > 1 else time.monotonic()
    if not in_worker():
        _stop_workers(signum)
    if _whole_depth or _importing(frame):  # a module cut short in its import stays broken
        _pending = True
    elif _stops_at_once():
        raise Stopped(_received)


def _importing(frame: FrameType | None) -> bool:
    """Whether the signal interrupted the import of a module (raised at the next `whole()`'s end)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _stops_at_once() -> bool:
    """Whether the signals received stop the command now: outside a fit, or on the second signal."""
    return not _training or _count > 1


def _stop_workers(signum: int) -> None:
    """Pass the signal on, as SIGTERM, to the child processes that act on it (not those that ignore
    it, such as multiprocessing's resource trackers), unless Ctrl-C in the terminal reached them
    too, and wait for them to exit."""
    workers = [pid for pid in _children() if not _ignores(pid, signum)]
    for pid in [] if _from_the_terminal(signum) else workers:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)  # SIGINT would make some (submitit's) print a traceback
    while any(Path(f"/proc/{pid}").exists() and not _is_zombie(pid) for pid in workers):
        time.sleep(POLL_SECONDS)  # a second signal raises Stopped here: stop waiting


def _from_the_terminal(signum: int) -> bool:
    """Whether a SIGINT is most likely Ctrl-C in the terminal, which every process of the foreground
    group receives, workers included."""
    try:
        return signum == signal.SIGINT and os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError):  # no terminal
        return False


def _children() -> list[int]:
    pids = []
    for children in Path("/proc/self/task").glob("*/children"):
        pids += [int(pid) for pid in children.read_text().split()]
    return pids


def _status(pid: int) -> dict[str, str]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def _ignores(pid: int, signum: int) -> bool:
    return bool(int(_status(pid).get("SigIgn", "0"), 16) >> (signum - 1) & 1)


def _is_zombie(pid: int) -> bool:
    return _status(pid).get("State", "Z").startswith("Z")


def end_stopped_worker_job(stop: Stopped) -> NoReturn:
    """In a worker, once its stopped job is recorded: have submitit requeue it if that is what the
    signal asked for, else exit (the main process is waiting for its workers to exit)."""
    if stop.signum == REQUEUE and _requeue is not None:
        _requeue(stop.signum, None)
    os._exit(stop.exit_status)


def end_worker_job() -> None:
    """In a worker, between jobs: a signal ends the worker at once (it has nothing to record)."""
    for signum in SIGNALS:
        signal.signal(signum, lambda signum, frame: os._exit(128 + signum))


def note_interrupt() -> None:
    """A KeyboardInterrupt that no handled signal raised (a debugger's, a test's) counts as SIGINT."""
    global _received, _count
    if _received is None:
        _received, _count = signal.SIGINT, 1


def requested() -> bool:
    """Whether a signal has asked the command to stop."""
    return _received is not None


def stop() -> None:
    """Raise `Stopped` if a signal has asked to stop (once whatever it waited for is recorded)."""
    if _received is not None:
        raise Stopped(_received)


def training_started() -> None:
    """A fit has started training: from now on the first signal asks it to stop at the end of the
    epoch instead of at once. Installs the handlers again, in place of Lightning's for SIGTERM."""
    global _training
    install()
    _training = True


def training_ended() -> None:
    """The fit has returned: signals stop the command at once again."""
    global _training
    _training = False


@contextmanager
def whole() -> Iterator[None]:
    """Files written in this block are finished before a signal that arrives meanwhile stops the command."""
    global _whole_depth, _pending
    _whole_depth += 1
    try:
        yield
    finally:
        _whole_depth -= 1
    if not _whole_depth and _pending and _stops_at_once():
        _pending = False
        raise Stopped(_received)


def reset() -> None:
    """Forget a received signal (tests run many commands in one process)."""
    global _received, _count, _pending
    _received, _count, _pending = None, 0, False


def _planned() -> dict[str, tuple[int, int]]:
    """The signals the tests plan: moment -> (count, signal number); a malformed item is ignored."""
    plan = {}
    for item in filter(None, os.environ.get("EXPERIMENTS_SIGNAL_AT", "").split(",")):
        where, _, name = item.partition("=")
        moment_name, _, count = where.partition(":")
        with suppress(KeyError, ValueError):
            plan[moment_name] = (int(count or 1), int(signal.Signals[name]))
    return plan


_PLAN = _planned()
_seen: dict[str, int] = {}


def moment(name: str) -> None:
    """A named moment: where a test asked for a signal here, send it to this process now."""
    if name in _PLAN:
        _seen[name] = _seen.get(name, 0) + 1
        count, signum = _PLAN[name]
        if _seen[name] == count:
            os.kill(os.getpid(), signum)
