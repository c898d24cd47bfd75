"""`resume=FOLDER`: continue a run, or re-run a sweep, in the folder it was written to.

A run folder is resumed from its checkpoint, with the overrides it recorded (`.hydra/overrides.yaml`):
only `trainer.max_epochs` may change, to extend it. A sweep folder is re-run from the overrides its
`multirun.yaml` recorded: finished jobs are skipped untouched, interrupted ones continue from their
checkpoints, and failed or missing ones train again. Everything here reads the folders as data.
"""

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from experiments.errors import UserError
from experiments.naming import job_number

# What a resumed run may set differently from the run it continues (a sweep: only how it is launched).
CHANGEABLE = ("trainer.max_epochs", "checkpoint_minutes", "fit_picture", "hydra/launcher", "hydra.launcher.")
SWEEP_CHANGEABLE = ("hydra/launcher", "hydra.launcher.")
FINISHED = ("ok", "diverged")


def override_key(override: str) -> str:
    """The key an override sets: `+trainer.gradient_clip_val=1` -> `trainer.gradient_clip_val`."""
    return override.split("=", 1)[0].lstrip("+~")


def _recorded(path: Path, what: str) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise UserError(f"resume: cannot read {path} ({type(error).__name__}), so the {what} is unknown.") from None


def resume_arguments(arguments: Sequence[str]) -> list[str]:
    """The command line that continues `resume=FOLDER`: the recorded overrides, with any new
    `trainer.max_epochs` (a run) or `hydra...` setting in place of the recorded one. Any other
    command line is returned as it is."""
    given = [a for a in arguments if a.startswith("resume=")]
    if not given:
        return list(arguments)
    folder = Path(given[-1].split("=", 1)[1].strip("'\""))
    new = [a for a in arguments if not a.startswith("resume=") and a not in ("-m", "--multirun")]
    if (folder / "multirun.yaml").is_file():
        return _sweep_arguments(folder, new)
    if (folder / ".hydra" / "overrides.yaml").is_file():
        return _run_arguments(folder, new)
    if any(folder.glob("*/.hydra/overrides.yaml")):  # Optuna's sweeper keeps no multirun.yaml
        raise UserError(
            f"resume={folder}: that sweep recorded no multirun.yaml, as a sweeper that chooses its jobs as it "
            f"goes (Optuna) does not; resume= re-runs grid sweeps (key=v1,v2). Start a new sweep instead."
        )
    raise UserError(
        f"resume={folder}: there is no run or sweep there (a run folder holds .hydra/overrides.yaml, a "
        f"sweep folder multirun.yaml); runs are in outputs/runs/<stamp>/, sweeps in outputs/multirun/<stamp>/."
    )


def _run_arguments(folder: Path, new: list[str]) -> list[str]:
    recorded = _recorded(folder / ".hydra" / "overrides.yaml", "run's configuration")
    if not isinstance(recorded, list):
        raise UserError(f"resume: {folder / '.hydra' / 'overrides.yaml'} is not a list of overrides.")
    only = "only trainer.max_epochs (to train longer), checkpoint_minutes, fit_picture and the launcher can"
    _refuse_changes(folder, new, CHANGEABLE, "a run", only)
    _refuse_another_folder(folder, recorded, folder / ".hydra" / "hydra.yaml")
    replaced = {override_key(a) for a in new}
    kept = [str(a) for a in recorded if override_key(str(a)) not in replaced and override_key(str(a)) != "resume"]
    return [*kept, *new, f"hydra.run.dir={quoted(folder)}", f"resume={quoted(folder)}"]


def _sweep_arguments(folder: Path, new: list[str]) -> list[str]:
    recorded = _recorded(folder / "multirun.yaml", "sweep's configuration")
    try:
        overrides = recorded["hydra"]["overrides"]
        task, hydra = [str(a) for a in overrides["task"]], [str(a) for a in overrides["hydra"]]
        sweeper = recorded["hydra"]["sweeper"]["_target_"]
    except (KeyError, TypeError) as error:
        raise UserError(
            f"resume: {folder / 'multirun.yaml'} does not record the sweep's overrides ({error})."
        ) from None
    if not sweeper.endswith(("BatchedSweeper", "BasicSweeper")):
        raise UserError(
            f"resume={folder}: that sweep was run by {sweeper.rsplit('.', 1)[-1]}, which chooses its jobs as it "
            f"goes; resume= re-runs grid sweeps (key=v1,v2). Start a new sweep instead."
        )
    _refuse_changes(folder, new, SWEEP_CHANGEABLE, "a sweep", "only the launcher (hydra/launcher=...) can")
    _refuse_another_folder(folder, task, folder / "multirun.yaml")
    replaced = {override_key(a) for a in new}
    hydra = [
        a for a in hydra if override_key(a) not in replaced and override_key(a) not in ("hydra.sweep.dir", "hydra.mode")
    ]
    task = [a for a in task if override_key(a) != "resume"]
    return ["-m", *task, *hydra, *new, f"hydra.sweep.dir={quoted(folder)}", f"resume={quoted(folder)}"]


def quoted(path: Path) -> str:
    """A path as an override's value, quoted: a job folder's name holds `=` and `,`."""
    return "'" + str(path).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _refuse_changes(folder: Path, new: list[str], changeable: tuple[str, ...], what: str, only: str) -> None:
    changed = [a for a in new if not override_key(a).startswith(changeable)]
    if changed:
        raise UserError(
            f"resume={folder} continues {what} as it was set, so {' '.join(changed)} cannot change; {only}. "
            f"To train with other settings, start a new one."
        )


def _refuse_another_folder(folder: Path, recorded: Sequence[Any], hydra_record: Path) -> None:
    """A relative path among the overrides (data.path=houses.csv) is read from the folder the
    command runs in: continuing from another folder could read another file."""
    relative = [str(a) for a in recorded if "path=" in str(a) and not str(a).split("=", 1)[1].startswith("/")]
    if not relative:
        return
    record = _recorded(hydra_record, "folder it was started in")
    started = (record.get("hydra", record) or {}).get("runtime", {}).get("cwd") if isinstance(record, dict) else None
    if started and Path(started).resolve() != Path.cwd().resolve():
        raise UserError(
            f"resume={folder}: it was started in {started} and reads {', '.join(relative)} from there; run the "
            f"command in {started}."
        )


def read_status(run_dir: Path) -> str | None:
    """The status its summary.json records ("ok", "interrupted", ...), or None without a readable one."""
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    return summary.get("status") if isinstance(summary, dict) else None


def finished_jobs(sweep_dir: Path, job_overrides: Sequence[Sequence[str]], first_index: int) -> set[int]:
    """The indices of the jobs that a sweep folder holds finished (ok or diverged), each found in
    its folder `<index>_...` with the same recorded overrides."""
    folders: dict[int, Path] = {}
    for path in sweep_dir.iterdir() if sweep_dir.is_dir() else []:
        number = job_number(path)
        if number is not None and path.is_dir():
            folders[number] = path
    finished = set()
    for index, overrides in enumerate(job_overrides, start=first_index):
        folder = folders.get(index)
        if folder is None or read_status(folder) not in FINISHED:
            continue
        try:
            recorded = yaml.safe_load((folder / ".hydra" / "overrides.yaml").read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if isinstance(recorded, list) and _without_resume(recorded) == _without_resume(overrides):
            finished.add(index)
    return finished


def _without_resume(overrides: Sequence[Any]) -> list[str]:
    return [str(o) for o in overrides if override_key(str(o)) != "resume"]


def prepare_resume(
    resume: str | None, run_dir: Path, max_epochs: int, schedule: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """The checkpoint a run continues from, loaded as data, or None to train from the start.

    `resume` is the run's own folder (`resume=RUN`) or its sweep's (`resume=SWEEP`, or a requeued
    job's). A sweep's job continues only from a checkpoint of a run that did not finish; otherwise
    what an earlier attempt left in its folder is removed, so that it trains again from the start."""
    if resume is None:
        return None
    if Path(resume).resolve() != run_dir.resolve() and not resumable(run_dir):
        clear_attempt(run_dir)
        return None
    checkpoint = resume_point(run_dir, max_epochs, schedule)
    (run_dir / "hparams.yaml").unlink(missing_ok=True)  # written anew, with the new max_epochs
    return checkpoint


def resume_point(run_dir: Path, max_epochs: int, schedule: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The checkpoint `resume=RUN_DIR` continues from, with the `schedule` now configured, or one line
    saying why it cannot."""
    status = read_status(run_dir)
    path = run_dir / "checkpoints" / "last.ckpt"
    if status in ("failed", "diverged"):
        raise UserError(f"resume={run_dir}: that run {status}; there is nothing to continue. Train it again.")
    if not path.is_file():
        raise UserError(f"resume={run_dir}: the run has no checkpoint to continue from (checkpoints/last.ckpt).")
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        epoch = len(checkpoint["callbacks"]["EpochRecorder"]["losses"]) - 1
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same answer
        raise UserError(
            f"resume={run_dir}: {path} is not a checkpoint this version can continue from "
            f"({type(error).__name__}); train the run again."
        ) from None
    if epoch >= max_epochs:
        raise UserError(
            f"resume={run_dir}: the run has already trained {epoch} epochs; give trainer.max_epochs=N with N "
            f"above {epoch} to train it longer."
        )
    _refuse_another_schedule(run_dir, checkpoint, schedule or {})
    return checkpoint


def _refuse_another_schedule(run_dir: Path, checkpoint: dict[str, Any], schedule: Mapping[str, Any]) -> None:
    """A scheduler keeps its settings in its state: a setting that follows `trainer.max_epochs` (cosine's
    T_max) would change with a longer run, and the schedule with it, in mid-run."""
    saved = (checkpoint.get("lr_schedulers") or [{}])[0]
    changed = [
        key for key, value in schedule.items() if not key.startswith("_") and key in saved and saved[key] != value
    ]
    if changed:
        was = ", ".join(f"schedule.{key}={saved[key]}" for key in changed)
        now = ", ".join(f"{schedule[key]}" for key in changed)
        raise UserError(
            f"resume={run_dir}: the run's learning-rate schedule was set with {was}, which would now be {now} "
            f"(it follows trainer.max_epochs); a schedule cannot change in mid-run. To train longer, start a new "
            f"run with the new trainer.max_epochs."
        )


def resumable(run_dir: Path) -> bool:
    """Whether a sweep's job folder holds a run to continue: a checkpoint, of a run that was
    interrupted or ended without a summary (killed after a periodic checkpoint)."""
    return read_status(run_dir) in ("interrupted", None) and (run_dir / "checkpoints" / "last.ckpt").is_file()


def clear_attempt(run_dir: Path) -> None:
    """Remove what an earlier attempt of a job left, all but Hydra's record of its config."""
    for path in run_dir.iterdir() if run_dir.is_dir() else []:
        if path.name == ".hydra":
            continue
        shutil.rmtree(path) if path.is_dir() else path.unlink()
