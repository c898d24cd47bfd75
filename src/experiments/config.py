"""The shape of the configuration, declared once.

Each option of a config group has a schema here, registered in Hydra's ConfigStore as
`<group>_<option>_schema`; the YAML files in conf/ extend one and only choose values. OmegaConf
then refuses a wrong type (`seed=abc`) or an unknown key (`optim.learning_rate=1`) by itself.
`check` holds what a type cannot say. Nothing here imports torch, so a mistake is answered before PyTorch loads.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import II, MISSING, DictConfig, OmegaConf, open_dict

from experiments.errors import UserError
from experiments.naming import folder_suffix

# The repository's conf/, found from this file so the commands run from any directory.
CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")


@dataclass
class DataConfig:
    batch_size: int | None = None  # null: the whole data set in one batch (full-batch gradient descent)
    shuffle: bool = False  # reshuffle the rows every epoch (seeded)
    # The share of rows held out for val/loss (seeded); the tutorials measure on the training data.
    val_fraction: float = 0.0
    standardize: bool = False  # train on z-scores of the training split; results stay in the data's units
    # Standardize, then decorrelate the features (from the training split's R factor): a round loss surface,
    # on which optim=gd with optim.lr = (number of targets) / 2 reaches the optimum in one step.
    whiten: bool = False


@dataclass
class BuiltinData(DataConfig):
    _target_: str = "experiments.datamodule.RegressionDataModule.from_builtin"
    name: str = MISSING  # one of the tutorials' tables


@dataclass
class CsvData(DataConfig):
    _target_: str = "experiments.datamodule.RegressionDataModule.from_csv"
    path: str = MISSING  # relative to the folder you run the command in
    targets: Any = MISSING  # the column(s) to predict: price, or [apples,oranges]
    features: Any = None  # the input columns; null: every column that is not a target


@dataclass
class SyntheticData(DataConfig):
    _target_: str = "experiments.datamodule.RegressionDataModule.from_synthetic"
    n: int = 10000  # rows
    num_features: int = 8
    num_targets: int = 2
    noise: float = 0.1  # standard deviation of the noise added to each target: the optimal loss is about noise^2
    batch_size: int | None = 256
    shuffle: bool = True


@dataclass
class LinearModel:
    _target_: str = "torch.nn.Linear"


@dataclass
class ScratchModel:
    _target_: str = "experiments.models.ScratchLinear"
    bias_init: str = "randn"  # randn, or zeros as in tutorial 003


@dataclass
class OptimConfig:
    """A partial: the module calls it with the model's parameters."""

    _target_: str = MISSING
    _partial_: bool = True
    _convert_: str = "all"  # plain lists (Adam's betas), so checkpoints hold no config objects
    lr: float = MISSING


@dataclass
class GradientDescentOptim(OptimConfig):
    _target_: str = "experiments.optim.GradientDescent"
    lr: float = 1e-5


@dataclass
class SGDOptim(OptimConfig):
    _target_: str = "torch.optim.SGD"
    lr: float = 1e-5
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0


@dataclass
class AdamOptim(OptimConfig):
    _target_: str = "torch.optim.Adam"
    lr: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.0
    amsgrad: bool = False


@dataclass
class NewtonOptim(OptimConfig):
    _target_: str = "experiments.optim.Newton"
    lr: float = 1.0  # 1: the full Newton step, the optimum in one step with full batches


@dataclass
class LBFGSOptim(OptimConfig):
    _target_: str = "experiments.optim.LBFGS"
    lr: float = 1.0
    max_iter: int = 20  # iterations per optimizer step, each with its own line search
    max_eval: int | None = None  # null: 1.25 * max_iter
    history_size: int = 10
    line_search_fn: str | None = "strong_wolfe"
    tolerance_grad: float = 0.0  # 0: no early stop, so float64 runs go on to many digits
    tolerance_change: float = 0.0


@dataclass
class ScheduleConfig:
    """How the learning rate changes from epoch to epoch: a partial of a `torch.optim.lr_scheduler`
    class, called with the run's optimizer and stepped once per epoch (`experiments.schedules`).
    The keys are the scheduler's own arguments. No `_target_`: the learning rate stays `optim.lr`."""

    _target_: str | None = None
    _partial_: bool = True


@dataclass
class StepSchedule(ScheduleConfig):
    _target_: str = "torch.optim.lr_scheduler.StepLR"
    step_size: int = 30  # epochs between decays
    gamma: float = 0.1  # the factor each decay multiplies the learning rate by


@dataclass
class ExponentialSchedule(ScheduleConfig):
    _target_: str = "torch.optim.lr_scheduler.ExponentialLR"
    gamma: float = 0.95  # the factor each epoch multiplies the learning rate by


@dataclass
class CosineSchedule(ScheduleConfig):
    _target_: str = "torch.optim.lr_scheduler.CosineAnnealingLR"
    T_max: int = II("trainer.max_epochs")  # epochs from optim.lr down to eta_min
    eta_min: float = 0.0


@dataclass
class WarmupSchedule(ScheduleConfig):
    _target_: str = "torch.optim.lr_scheduler.LinearLR"
    start_factor: float = 0.1  # the first epoch trains at start_factor * optim.lr
    end_factor: float = 1.0  # reached after total_iters epochs, then kept
    total_iters: int = 5  # epochs of warm-up


@dataclass
class TrainerConfig:
    """The Lightning Trainer settings this tool supports; `+trainer.NAME=VALUE` adds any other."""

    max_epochs: int = 100
    accelerator: str = "cpu"  # cpu, gpu or auto (set by the accelerator group)
    devices: int = 1
    precision: str = "32"  # 32 (float32) or 64 (float64)
    deterministic: bool = False


@dataclass
class Config:
    data: DataConfig = MISSING
    model: Any = MISSING
    optim: OptimConfig = MISSING
    schedule: ScheduleConfig = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    seed: int = 42
    # The pictures of the fit and of the path on the loss surface (TensorBoard's IMAGES, landscape.png).
    # null: for a single run, not for each job of a sweep (drawing costs more than training a small
    # job); true: always; false: never.
    fit_picture: bool | None = None
    # Save a checkpoint every this many minutes of training (and at the end), so that even `kill -9`
    # loses at most that much; null: only at the end.
    checkpoint_minutes: float | None = 5.0
    resume: str | None = None  # a run or sweep folder to continue (see README: When things go wrong)
    output_dir: str = MISSING  # where this job writes; config.yaml sets it from Hydra


@dataclass
class PredictConfig:
    run: str = MISSING  # a run folder: outputs/runs/<stamp> or outputs/multirun/<stamp>/<job>
    inputs: Any = None  # rows of feature values, e.g. [[75,63,44]]
    input_csv: str | None = None  # or a CSV file with the features by column name
    output: str | None = None  # a CSV file to write the inputs and predictions to


def register() -> None:
    """Put the schemas in Hydra's ConfigStore, where conf/'s YAML files find them, and the resolver
    that names run folders (`${folder_suffix:...}`) in OmegaConf."""
    OmegaConf.register_new_resolver("folder_suffix", folder_suffix, replace=True)
    store = ConfigStore.instance()
    store.store(name="config_schema", node=Config)
    store.store(name="predict_schema", node=PredictConfig)
    for group, name, node in [
        ("data", "builtin", BuiltinData),
        ("data", "csv", CsvData),
        ("data", "synthetic", SyntheticData),
        ("model", "linear", LinearModel),
        ("model", "scratch", ScratchModel),
        ("optim", "gd", GradientDescentOptim),
        ("optim", "sgd", SGDOptim),
        ("optim", "adam", AdamOptim),
        ("optim", "newton", NewtonOptim),
        ("optim", "lbfgs", LBFGSOptim),
        ("schedule", "constant", ScheduleConfig),
        ("schedule", "step", StepSchedule),
        ("schedule", "exponential", ExponentialSchedule),
        ("schedule", "cosine", CosineSchedule),
        ("schedule", "warmup", WarmupSchedule),
    ]:
        store.store(name=f"{group}_{name}_schema", node=node)  # not in a group: --help lists no schema options


register()


def to_yaml(container: Any) -> str:
    """Plain values (dicts, lists, scalars) as `OmegaConf.to_yaml` writes them, without making a DictConfig."""
    import yaml
    from omegaconf._utils import get_omega_conf_dumper

    return yaml.dump(
        container, default_flow_style=False, allow_unicode=True, sort_keys=False, Dumper=get_omega_conf_dumper()
    )


def compose_run(overrides: Sequence[str], output_dir: str | Path) -> DictConfig:
    """The config `python train.py *overrides` runs, writing to `output_dir`, with Hydra's runtime set
    as for a single run (`train` reads it): how tests and the benchmark make a run without the command line."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.output_dir = str(output_dir)  # ${hydra:runtime.output_dir} is unset outside @hydra.main
    return cfg


class Values(dict):
    """A job's config resolved to plain values, read as a DictConfig is (`cfg.optim.lr`), so that a
    sweep can check thousands of jobs without making a DictConfig of each."""

    def __getattr__(self, name: str) -> Any:
        try:
            value = self[name]
        except KeyError:
            raise AttributeError(name) from None
        return Values(value) if isinstance(value, dict) else value


PRECISIONS = {"32", "32-true", "64", "64-true"}
# Lightning options for its own optimizer loop, which RegressionModule.training_step replaces.
UNSUPPORTED_TRAINER_KEYS = {"max_steps": -1, "accumulate_grad_batches": 1, "gradient_clip_val": None}


def check(cfg: DictConfig, multirun: bool = False) -> None:
    """Refuse settings that a type cannot rule out, before anything is built or written."""
    lr = cfg.optim.lr
    if not (math.isfinite(lr) and lr > 0):
        raise UserError(f"optim.lr must be a positive, finite number such as optim.lr=1e-5; got {lr!r}.")
    if cfg.trainer.max_epochs < 1:
        raise UserError(f"trainer.max_epochs must be a whole number of at least 1; got {cfg.trainer.max_epochs}.")
    _check_data(cfg.data)
    _check_schedule(cfg.get("schedule") or {})
    if not 0 <= cfg.seed < 2**32:
        raise UserError(f"seed must be a whole number from 0 to 4294967295; got {cfg.seed}.")
    _check_trainer(cfg.trainer, multirun)
    minutes = cfg.get("checkpoint_minutes")
    if minutes is not None and not (math.isfinite(minutes) and minutes > 0):
        raise UserError(
            f"checkpoint_minutes must be a positive number of minutes, or null for a checkpoint only at the "
            f"end; got {minutes}."
        )


def _check_data(data: DictConfig) -> None:
    if data.batch_size is not None and data.batch_size < 1:
        raise UserError(
            f"data.batch_size must be a whole number of at least 1, or null for the whole data set "
            f"in one batch; got {data.batch_size}."
        )
    if not 0 <= data.val_fraction < 1:
        raise UserError(
            f"data.val_fraction must be a number from 0 (no validation rows) up to, but not "
            f"including, 1; got {data.val_fraction}."
        )
    for key in ("n", "num_features", "num_targets"):
        if key in data and data[key] < 1:
            raise UserError(f"data.{key} must be a whole number of at least 1; got {data[key]}.")
    if "noise" in data and not (math.isfinite(data.noise) and data.noise >= 0):
        raise UserError(
            f"data.noise must be a number of at least 0 (the standard deviation of the noise added to "
            f"every target); got {data.noise}."
        )


def _check_schedule(schedule: DictConfig | dict[str, Any]) -> None:
    for key in ("step_size", "T_max", "total_iters"):
        if key in schedule and schedule[key] < 1:
            raise UserError(f"schedule.{key} must be a whole number of epochs, at least 1; got {schedule[key]}.")
    gamma = schedule.get("gamma", 1.0)
    if not (math.isfinite(gamma) and gamma > 0):
        raise UserError(
            f"schedule.gamma must be a positive number, the factor the learning rate is multiplied by (0.5 halves "
            f"it); got {gamma}."
        )
    eta_min = schedule.get("eta_min", 0.0)
    if not (math.isfinite(eta_min) and eta_min >= 0):
        raise UserError(
            f"schedule.eta_min must be a number of at least 0, the learning rate the cosine ends at; got {eta_min}."
        )
    for key in ("start_factor", "end_factor"):
        if key in schedule and not 0 < schedule[key] <= 1:
            raise UserError(
                f"schedule.{key} must be a number above 0 and at most 1, a share of optim.lr; got {schedule[key]}."
            )


def _check_trainer(trainer: DictConfig, multirun: bool) -> None:
    if trainer.devices != 1:
        raise UserError(
            f"trainer.devices must be 1; got {trainer.devices}. A linear regression fits on one "
            f"device, and every job writes its results from a single process."
        )
    strategy = str(trainer.get("strategy", ""))
    if multirun and any(name in strategy for name in ("ddp", "fsdp", "deepspeed")):
        raise UserError(
            f"trainer.strategy={strategy} cannot run inside a multirun (-m): its worker processes would "
            f"re-run the whole sweep. Run it as a single run, without -m."
        )
    if trainer.precision not in PRECISIONS:
        half = (
            " Half precision keeps about 3 significant digits, too few to find an optimum."
            if "16" in trainer.precision
            else ""
        )
        raise UserError(f"trainer.precision must be 32 or 64 (float32 or float64); got {trainer.precision!r}.{half}")
    for key, default in UNSUPPORTED_TRAINER_KEYS.items():
        if trainer.get(key, default) != default:
            raise UserError(
                f"trainer.{key} is not supported here: each optimizer step is taken by "
                f"RegressionModule.training_step's own loop, not by Lightning's. Remove it."
            )
    if trainer.accelerator == "gpu":
        import torch  # only here: the one check that needs it

        if not (torch.cuda.is_available() or torch.backends.mps.is_available()):
            raise UserError(
                "accelerator=gpu, but PyTorch sees no GPU here (torch.cuda.is_available() is False); "
                "use accelerator=cpu, or accelerator=auto to take a GPU only where there is one."
            )
