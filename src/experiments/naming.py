"""What a run's folder is called, and so what TensorBoard calls the run: its time stamp (a single
run) or number (a sweep's job), then the overrides that made it, shortened to stay readable. A
sweep's jobs are named by what varies between them; what they all share stays in the sweep's
multirun.yaml and each job's `.hydra/`, where the full list always is."""

import re
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, read_write

MAX_OVERRIDES_LENGTH = 80  # characters of overrides in a folder's name


def folder_suffix(override_dirname: str) -> str:
    """`_` and the overrides of `override_dirname` (Hydra's `key=value,key=value`) as a folder name
    holds them: a value that is a path (`data.path=/data/crops.csv`) by its file's name, never a
    nested folder, and past `MAX_OVERRIDES_LENGTH` characters the rest counted, not named."""
    if not override_dirname:
        return ""
    items = [_without_folders(item) for item in override_dirname.split(",")]
    kept: list[str] = []
    for item in items:
        if len(",".join([*kept, item])) > MAX_OVERRIDES_LENGTH:
            break
        kept.append(item)
    if not kept:  # one override longer than the whole allowance
        kept = [items[0][: MAX_OVERRIDES_LENGTH - 3] + "..."]
    if len(kept) < len(items):
        kept.append(f"and_{len(items) - len(kept)}_more")
    return "_" + ",".join(kept)


def _without_folders(item: str) -> str:
    """`key=value` with a path in `value` given by its last part (`data.path=crops.csv`), and without
    what a shell would read as a pattern or a quote (`data.targets=[price]` as `data.targets=price`)."""
    key, separator, value = item.partition("=")
    value = value.replace("\\ ", " ")  # Hydra's escaped space
    if "/" in value or "\\" in value:
        value = PureWindowsPath(PurePosixPath(value.rstrip("/\\")).name).name or value.replace("/", "-")
    name = (key + separator + value).replace("/", "-").replace("\\", "-")
    return re.sub(r"[\s]", "_", re.sub(r"[][*?'\"{}]", "", name))


class NameJobsByWhatVaries(Callback):
    """Leaves the overrides every job of a sweep shares (those of the command line that sweep
    nothing, such as `experiment=sweep_lr_epochs`) out of its job folders' names, by adding them to
    `hydra.job.config.override_dirname.exclude_keys` for every job, as a user could by hand."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        parser = OverridesParser.create()
        shared = [
            override.key_or_group
            for override in parser.parse_overrides(OmegaConf.to_container(config.hydra.overrides.task, resolve=False))
            if not override.is_sweep_override()
        ]
        excluded = list(config.hydra.job.config.override_dirname.exclude_keys)
        excluded += [key for key in shared if key not in excluded]
        setting = f"hydra.job.config.override_dirname.exclude_keys=[{','.join(excluded)}]"
        with read_write(config.hydra):
            config.hydra.job.config.override_dirname.exclude_keys = excluded
            # Each job's config is composed again from these (Hydra's `load_sweep_config`).
            config.hydra.overrides.hydra.append(setting)


def job_number(folder: Path) -> int | None:
    """The number of a sweep's job from its folder's name (`3_optim.lr=1e-05` is job 3); None for another folder."""
    head = folder.name.split("_", 1)[0]
    return int(head) if head.isdigit() else None


_RUN_FOLDER = re.compile(r"(\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_\d{6})(?:_(.+))?")


def trial_name(run_dir: Path) -> str:
    """A run's name in TensorBoard's HPARAMS tab, whose "Trial ID" column shows its first few
    characters: what was set first, then the folder that tells it from runs set alike."""
    if (run_dir.parent / "multirun.yaml").is_file():  # a sweep's job: 3_optim.lr=1e-05 (<sweep stamp>)
        return f"{run_dir.name} ({run_dir.parent.name})"
    named = _RUN_FOLDER.fullmatch(run_dir.name)
    return f"{named[2] or 'defaults'} ({named[1]})" if named else run_dir.name
