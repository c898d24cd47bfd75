"""The command lines of train.py and predict.py: Hydra apps that compose and check the configuration
first, and import PyTorch and Lightning only once it is sound, so a mistake is answered in a second.

A mistake is one line on stderr and exit status 2 (HYDRA_FULL_ERROR=1 shows the traceback). Inside
Hydra a mistake travels as an `Exit` carrying the UserError; only the entry points below print it and
exit, so the Python API (`experiments.api`) runs the same task function and raises the UserError instead.
"""

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import hydra
from hydra._internal import utils as hydra_internal_utils
from hydra.core.hydra_config import HydraConfig
from hydra.errors import ConfigCompositionException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import InterpolationResolutionError, ValidationError

from experiments import stopping
from experiments.config import CONFIG_DIR, check
from experiments.errors import Exit, UserError
from experiments.files import disk_trouble, is_disk_trouble
from experiments.folders import remove_if_unused
from experiments.resume import quoted, resume_arguments
from experiments.summary import objective

if TYPE_CHECKING:
    from experiments.launcher import BatchedLauncher

# What each type OmegaConf names in its message takes, in words.
EXPECTED = {"Integer": "a whole number", "Float": "a number", "bool": "true or false"}


def type_error_line(error: BaseException) -> str | None:
    """A value of the wrong type for a declared key, in one line that names the key and what it takes;
    None for any other error."""
    cause = error.__cause__
    if not (isinstance(error, ConfigCompositionException) and isinstance(cause, ValidationError)):
        return None
    expected = next((words for name, words in EXPECTED.items() if name in cause.msg), None)
    if expected is None:
        return f"{cause.full_key}: {cause.msg}"
    return f"{cause.full_key} must be {expected}; got {cause.value!r}."


def interpolation_error_line(error: InterpolationResolutionError) -> str:
    """A value that refers to something missing (`${oc.env:LR}` with LR unset) in one line."""
    reason = next(iter(str(error).splitlines()), type(error).__name__)
    return f"{error.full_key}: {reason}; set what it refers to, or give the value itself ({error.full_key}=VALUE)."


def _answer_in_one_line(run_and_report):
    """Hydra prints a value of the wrong type as four lines of OmegaConf detail, a refused folder
    or disk trouble as a traceback, and a signal as a KeyboardInterrupt traceback: one line is
    enough, and a signal ends the command with 128 + its number, its sweep summarized."""

    def run_and_report_in_one_line(func):
        def explained():
            try:
                return func()
            except stopping.Stopped as stop:
                _summarize_stopped_sweep()
                sys.exit(stop.exit_status)
            except KeyboardInterrupt:  # before the handlers were installed
                sys.exit(130)
            except (ConfigCompositionException, UserError, OSError) as error:
                line = error_line(error)
                if line is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
                    raise
                print(f"Error: {line}", file=sys.stderr, flush=True)
                if isinstance(error, OSError):  # a sweep stops where the disk failed: what it finished is summarized
                    _summarize_stopped_sweep()
                sys.exit(1 if isinstance(error, OSError) else 2)

        return run_and_report(explained)

    return run_and_report_in_one_line


def error_line(error: BaseException) -> str | None:
    """The one line the command line prints after "Error: " for `error`; None for one it leaves to Hydra."""
    if isinstance(error, OSError) and is_disk_trouble(error):
        return disk_trouble(error)
    if isinstance(error, UserError):
        return str(error)
    return type_error_line(error)


def _summarize_stopped_sweep() -> None:
    """A stopped sweep's summary, if a sweep was running (see `experiments.sweeps.SweepSummary`)."""
    from experiments.sweeps import SweepSummary

    if SweepSummary.running is not None:
        SweepSummary.running.summarize_stopped()


hydra_internal_utils.run_and_report = _answer_in_one_line(hydra_internal_utils.run_and_report)


def exit_with(error: UserError, run_dir: Path | None = None) -> NoReturn:
    """End the command for a user's mistake (exit 2, the mistake printed by the entry point), removing
    the folder it would have written."""
    if run_dir is not None:
        remove_if_unused(run_dir)
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise error
    raise Exit(2, error)


def _train_sweep(launcher: "BatchedLauncher", job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list:
    """The batched launcher's way into train.py's sweeps (see `experiments.launcher`)."""
    from experiments.sweeps import train_sweep

    return train_sweep(launcher, job_overrides, initial_job_idx)


def train_task(cfg: DictConfig) -> float:
    """`python train.py`: one run, or with -m one job of a sweep (see `experiments.sweeps`).
    Returns the number a sweeper such as Optuna minimizes."""
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        from experiments.sweeps import run_sweep_job

        if stopping.in_worker():
            stopping.install()
        return run_sweep_job(cfg)
    run_dir = Path(cfg.output_dir)
    try:
        stopping.moment("startup")
        check(cfg)
        with stopping.whole():  # a signal waits for the import: one cut short breaks the modules half-loaded
            from experiments.training import train  # PyTorch and Lightning load here, once the config is sound

        summary = train(cfg)
    except UserError as error:
        exit_with(error, run_dir)
    except InterpolationResolutionError as error:
        exit_with(UserError(interpolation_error_line(error)), run_dir)
    except stopping.Stopped:
        remove_if_unused(run_dir)
        raise
    except OSError as error:  # the disk's trouble in one line, not after Hydra's "Error executing job"
        if not is_disk_trouble(error) or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        raise Exit(1, UserError(disk_trouble(error))) from None
    return objective(summary)


train_task.train_together = _train_sweep
_train_app = hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")(train_task)


def train_main() -> None:
    """train.py's command line: the Hydra app, with `resume=FOLDER` read as the recorded command it continues."""
    stopping.install_in_command()
    _run_command(_resumed_train_app)


def _resumed_train_app() -> None:
    try:
        sys.argv[1:] = resume_arguments(sys.argv[1:])
    except UserError as error:
        exit_with(error)
    _train_app()


def _run_command(app: Callable[[], None]) -> None:
    """Run a Hydra app as a command: a mistake ends it with its one line and exit status; a signal while
    Hydra composes (outside the handling above) ends it without a traceback."""
    try:
        app()
    except Exit as exit:
        if exit.error is not None:
            print(f"Error: {exit.error}", file=sys.stderr)
        raise
    except stopping.Stopped as stop:
        sys.exit(stop.exit_status)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="predict")
def _predict_app(cfg: DictConfig) -> None:
    """`python predict.py run=RUN_FOLDER 'inputs=[[75,63,44]]'`."""
    try:
        with stopping.whole():  # see train_task
            from experiments.predict import predict

        predict(cfg)
    except UserError as error:
        exit_with(error)


def predict_main() -> None:
    """predict.py's command line, with `run=FOLDER` taken as a path: a run folder's name holds `=` and `,`."""
    stopping.install_in_command()
    sys.argv[1:] = [_quoted_folder(argument) for argument in sys.argv[1:]]
    _run_command(_predict_app)


def _quoted_folder(argument: str) -> str:
    """`run=FOLDER` with FOLDER quoted for Hydra, unless it already is; any other argument as it is."""
    key, _, value = argument.partition("=")
    if key != "run" or not value or value[0] in "'\"":
        return argument
    return f"run={quoted(Path(value))}"
