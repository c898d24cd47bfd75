"""A sweep's job configs, composed once per kind of job instead of once per job.

Composing from the defaults list is the slow part of Hydra's composition, and jobs whose overrides
differ only in plain values (`optim.lr=1e-5`; not `data=csv`, `+key=...` or `hydra.*`) share a
defaults list. So here Hydra composes each kind once,
and each job is that config with its own values set as Hydra sets them
(`ConfigLoaderImpl._apply_overrides_to_config`). Its `.hydra/` files are filled in from a template
per kind. tests/test_jobs.py checks both against Hydra's own composition, job by job.
"""

import copy
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType, ValueType
from hydra.types import HydraContext
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from experiments.config import to_yaml
from experiments.files import write_whole
from experiments.naming import folder_suffix

HYDRA_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")


@dataclass
class Job:
    """One job of a sweep: its number and overrides, its config resolved to plain values (`hydra`
    node left out, `output_dir` filled in), the text of its `.hydra/` files, and, where it was asked
    for, its whole config as Hydra's `run_job` takes it."""

    index: int
    overrides: list[str]  # its task overrides (hydra.overrides.task)
    values: dict[str, Any]
    files: dict[str, str]
    hydra_subdir: str | None
    choices: dict[str, str]  # hydra.runtime.choices: the option of each config group
    config: DictConfig | None = None

    @property
    def output_dir(self) -> Path:
        return Path(self.values["output_dir"])

    def whole_config(self) -> DictConfig:
        """The job's config with its `hydra` node, as `run_job` hands it to callbacks."""
        if self.config is None:
            self.config = OmegaConf.merge(
                OmegaConf.create(self.files["config.yaml"]), OmegaConf.create(self.files["hydra.yaml"])
            )
        return self.config

    def write_hydra_files(self) -> None:
        """config.yaml, hydra.yaml and overrides.yaml in the job's `.hydra/`, as `run_job` writes them."""
        if self.hydra_subdir is None:
            return
        folder = self.output_dir / self.hydra_subdir
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in self.files.items():
            write_whole(folder / name, text)


@dataclass
class InvalidJob:
    """A job whose overrides Hydra refused, with the error."""

    index: int
    overrides: list[str]
    error: Exception


def compose_jobs(
    hydra_context: HydraContext,
    sweep_config: DictConfig,
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int = 0,
    keep_config: Callable[[dict[str, Any]], bool] = lambda values: True,
) -> Iterator[Job | InvalidJob]:
    """Each job of `job_overrides`, numbered from `initial_job_idx`, composed as Hydra's basic
    launcher composes it from `sweep_config`. `keep_config(values)` says whether a job needs its
    whole config as a DictConfig (a few milliseconds each)."""
    loader = hydra_context.config_loader
    parser = OverridesParser.create(config_loader=loader)
    kinds: dict[tuple[str, ...], _Kind | Exception] = {}
    for index, overrides in enumerate(job_overrides, start=initial_job_idx):
        overrides = list(overrides)
        try:
            parsed = [parse_override(parser, line) for line in overrides]
            plain = [o for o in parsed if _is_plain_value(o, loader)]
            others = {o.key_or_group for o in parsed if o not in plain}
            plain = [o for o in plain if o.key_or_group not in others]  # `~key` or `++key` too: Hydra's order
            shape = tuple(o.input_line for o in parsed if o not in plain) + tuple(o.key_or_group for o in plain)
            if shape not in kinds:
                try:
                    defaults = [o.input_line for o in parsed if o not in plain]
                    kinds[shape] = _Kind(
                        loader.load_sweep_config(sweep_config, defaults), [o.key_or_group for o in plain]
                    )
                except Exception as error:  # noqa: BLE001 - every job of this kind gets the error
                    kinds[shape] = error
            kind = kinds[shape]
            if isinstance(kind, Exception):
                raise kind
            yield kind.job(index, parsed, plain, keep_config)
        except Exception as error:  # noqa: BLE001 - reported with the job it belongs to
            yield InvalidJob(index, overrides, error)


# `key=number`, the overrides a sweep over values is made of; anything else goes to Hydra's parser.
_NUMBER_OVERRIDE = re.compile(
    r"(?P<key>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)=(?P<value>[-+]?(?:(?:0|[1-9]\d*)(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)"
)
_JOB_FIELD = re.compile(r"\$\{hydra\.job\.(num|id|override_dirname)\}")
# conf/config.yaml's job folder, filled in here: resolving it through OmegaConf costs more than composing the job.
_FOLDER_SUFFIX = "${folder_suffix:${hydra.job.override_dirname}}"
_INTEGER = re.compile(r"[-+]?\d+")


def parse_override(parser: OverridesParser, line: str) -> Override:
    """`parser.parse_override(line)`, with `key=number` parsed in microseconds rather than a millisecond."""
    match = _NUMBER_OVERRIDE.fullmatch(line)
    if match is None:
        return parser.parse_override(line)
    text = match["value"]
    return Override(
        type=OverrideType.CHANGE,
        key_or_group=match["key"],
        value_type=ValueType.ELEMENT,
        _value=int(text) if _INTEGER.fullmatch(text) else float(text),
        input_line=line,
        config_loader=parser.config_loader,
    )


def _is_plain_value(override: Override, loader: Any) -> bool:
    """Whether an override only sets a value in the composed config (`optim.lr=1e-5`), which Hydra
    applies after composition, rather than choosing a config, adding or deleting a key, or setting
    Hydra's own config."""
    return (
        override.is_sweep_override() is False
        and not override.is_hydra_override()
        and not (override.is_add() or override.is_force_add() or override.is_delete())
        and override.package is None
        and not isinstance(override.value(), (dict, list))
        and not loader.repository.group_exists(override.key_or_group)
    )


class _Kind:
    """Jobs that share a defaults list and the keys they set: one composed config, set to each
    job's values in turn, and templates of the .hydra/ files with a slot for each value that varies."""

    def __init__(self, config: DictConfig, keys: list[str]) -> None:
        self.config, self.keys = config, keys
        HydraConfig.instance().set_config(config)  # for ${hydra:...} in the values; output_dir is set per job
        task = OmegaConf.to_container(config, resolve=False, enum_to_str=True)
        self._hydra = {"hydra": task.pop("hydra")}
        self._task = task
        # The values that follow others (${seed}): resolved again for every job.
        self._interpolated = [
            path
            for path, value in _leaves(task)
            if isinstance(value, str) and "${" in value and path != ("output_dir",)
        ]
        # Whether any of them reads Hydra's node (${hydra:job.num}), which must then be the job's own.
        self._reads_hydra = any("${hydra:" in str(_get(task, path)) for path in self._interpolated)
        self._sweep_dir = str(config.hydra.sweep.dir)
        self._choices = OmegaConf.to_container(config.hydra.runtime.choices)
        self._subdir_template = str(self._hydra["hydra"]["sweep"]["subdir"])
        self._output_subdir = None if config.hydra.output_subdir is None else str(config.hydra.output_subdir)
        self._dirname_settings = OmegaConf.to_container(config.hydra.job.config.override_dirname)
        self._dirname_settings["exclude_keys"] = list(self._dirname_settings["exclude_keys"])
        self._templates: list[str] | None = None

    def job(
        self, index: int, parsed: list[Override], plain: list[Override], keep_config: Callable[[dict], bool]
    ) -> Job:
        config = self.config
        task_overrides = [o for o in parsed if not o.is_hydra_override()]
        task_lines = [o.input_line for o in task_overrides]
        override_dirname = get_overrides_dirname(overrides=task_overrides, **self._dirname_settings)
        with read_write(config):
            ConfigLoaderImpl._apply_overrides_to_config(plain, config)
        output_dir = os.path.abspath(os.path.join(self._sweep_dir, self._subdir(index, override_dirname)))
        set_values = [_raw(config, key) for key in self.keys]
        slots = [*set_values, *task_lines, override_dirname, str(index), index, output_dir]  # hydra.job.id is a string
        rendered = _rendered(slots)
        hydra_fields_set = False
        if self._reads_hydra or None in rendered:  # the job's own hydra node is needed: set it, as run_job does
            self._set_hydra_fields(task_lines, override_dirname, index, output_dir)
            hydra_fields_set = True
        values = copy.deepcopy(self._task)
        for key, value in zip(self.keys, set_values):
            if isinstance(value, str) and "${" in value:  # an interpolation, resolved as the job would see it
                value = OmegaConf.select(config, key, throw_on_missing=True)
            _put(values, tuple(key.split(".")), value)
        for path in self._interpolated:
            _put(values, path, OmegaConf.select(config, ".".join(map(str, path))))
        values["output_dir"] = output_dir
        whole_config = None
        if keep_config(values):
            if not hydra_fields_set:
                self._set_hydra_fields(task_lines, override_dirname, index, output_dir)
            whole_config = copy.deepcopy(config)
        return Job(index, task_lines, values, self._files(rendered), self._output_subdir, self._choices, whole_config)

    def _set_hydra_fields(self, task_lines: list[str], override_dirname: str, index: int, output_dir: str) -> None:
        """The job's fields of the `hydra` node, and HydraConfig set to it (what `${hydra:...}` reads)."""
        hydra = self.config.hydra
        with read_write(hydra):
            hydra.overrides.task = task_lines
            hydra.job.override_dirname = override_dirname
            with open_dict(hydra.job):
                hydra.job.id = index
                hydra.job.num = index
            hydra.runtime.output_dir = output_dir
        if self._reads_hydra:
            HydraConfig.instance().set_config(self.config)

    def _subdir(self, index: int, override_dirname: str) -> str:
        """`hydra.sweep.subdir` for a job: filled in here where it names nothing but the job's number
        and overrides (as it does by default), else resolved by OmegaConf."""
        job_fields = {"num": str(index), "id": str(index), "override_dirname": override_dirname}
        filled = self._subdir_template
        if "${" not in override_dirname:  # else OmegaConf resolves what the overrides refer to, below
            filled = filled.replace(_FOLDER_SUFFIX, folder_suffix(override_dirname))
        filled = _JOB_FIELD.sub(lambda match: job_fields[match[1]], filled)
        if "${" not in filled and "\\" not in filled:
            return filled
        hydra = self.config.hydra
        with read_write(hydra), open_dict(hydra.job):
            hydra.job.id = hydra.job.num = index
            hydra.job.override_dirname = override_dirname
            hydra.runtime.output_dir = self._hydra["hydra"]["runtime"]["output_dir"]  # not the last job's
        HydraConfig.instance().set_config(self.config)  # as run_job sets it before resolving the folder
        return str(self.config.hydra.sweep.subdir)

    def _files(self, rendered: list[str | None]) -> dict[str, str]:
        """The .hydra/ files of the job the config is set to, as `run_job` writes them: its templates
        with the `rendered` slots filled in (the set values, the overrides, override_dirname, id, num,
        output_dir); written whole where a slot's form depends on where it stands (None)."""
        if any(text is None for text in rendered):
            task = OmegaConf.to_container(self.config, resolve=False, enum_to_str=True)
            hydra_node = {"hydra": task.pop("hydra")}
            return dict(zip(HYDRA_FILES, map(to_yaml, (task, hydra_node, hydra_node["hydra"]["overrides"]["task"]))))
        if self._templates is None:
            task, hydra_node = copy.deepcopy(self._task), copy.deepcopy(self._hydra)
            overrides = hydra_node["hydra"]["overrides"]["task"] = [None] * (len(rendered) - len(self.keys) - 4)
            slots = [
                *((task, tuple(key.split("."))) for key in self.keys),
                *((overrides, (i,)) for i in range(len(overrides))),
                *((hydra_node, ("hydra", "job", name)) for name in ("override_dirname", "id", "num")),
                (hydra_node, ("hydra", "runtime", "output_dir")),
            ]
            for n, (root, path) in enumerate(slots):
                _put(root, path, _slot(n))
            self._templates = [to_yaml(task), to_yaml(hydra_node), to_yaml(overrides)]
        texts = []
        for template in self._templates:
            for n, text in enumerate(rendered):
                template = template.replace(_slot(n), text)
            texts.append(template)
        return dict(zip(HYDRA_FILES, texts))


def _leaves(node: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """(path, value) of every leaf of a container."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else None
    if items is None:
        yield path, node
        return
    for key, value in items:
        yield from _leaves(value, (*path, key))


def _raw(config: DictConfig, key: str) -> Any:
    """The value at a dotted `key` as set, an interpolation left as written."""
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(config, parent) if parent else config
    return OmegaConf.to_container(node, resolve=False, enum_to_str=True)[leaf]


def _slot(n: int) -> str:
    return f"SLOT{n:06d}X"


def _get(root: Any, path: tuple) -> Any:
    """The leaf at `path` of a container."""
    for part in path:
        root = root[part]
    return root


def _put(root: Any, path: tuple, value: Any) -> None:
    """Set the leaf at `path` of a container."""
    for part in path[:-1]:
        root = root[part]
    root[path[-1]] = value


def _rendered(values: list[Any]) -> list[str | None]:
    """How `OmegaConf.to_yaml` writes each of `values`; None where that could depend on where it stands
    (a list or mapping; a string with spaces or in double quotes, which YAML folds past 80 columns)."""
    lines = to_yaml(values).splitlines()
    if len(lines) != len(values):
        return [None] * len(values)
    return [
        line[2:]
        if not isinstance(value, (list, dict)) and " " not in line[2:] and not line[2:].startswith('"')
        else None
        for line, value in zip(lines, values)
    ]
