"""The launcher's composition (experiments.jobs) against Hydra's own, job by job."""

import os
from pathlib import Path

import pytest
from hydra import initialize_config_dir
from hydra._internal.callbacks import Callbacks
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import setup_globals
from hydra.types import HydraContext, RunMode
from omegaconf import OmegaConf, open_dict, read_write

from experiments.config import CONFIG_DIR
from experiments.jobs import compose_jobs, parse_override

SWEEPS = {
    "interpolated values": [["seed=7", "optim.lr=${seed}"], ["seed=8", "optim.lr=${seed}"]],
    "lr x epochs": [
        [f"optim.lr={lr}", f"trainer.max_epochs={e}"] for lr in ("1e-6", "1e-5", "0.0001") for e in (5, 10)
    ],
    "groups and values": [
        [f"optim={optim}", f"optim.lr={lr}", "seed=3"] for optim in ("sgd", "adam") for lr in ("0.01", "1")
    ],
    "data choices": [["data=toy", "data.batch_size=5"], ["data=crops", "data.shuffle=true", "data.batch_size=null"]],
    "odd values": [
        ["data=csv", "data.path='my data/file with spaces.csv'", "data.targets=[a,b]"],
        ["+trainer.gradient_clip_val=1"],
        ["optim.lr=2", "++optim.lr=3"],
    ],
    "values read from Hydra's node": [
        [f"optim.lr={lr}", "+where=${hydra:runtime.output_dir}/${hydra:job.num}"] for lr in (1, 2)
    ],
}


@pytest.fixture(params=["sweeps", "a folder with spaces"])
def sweep(tmp_path, request, hydra_restore_singletons):
    setup_globals()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration(
            "config",
            [f"hydra.sweep.dir='{tmp_path / request.param}'", "hydra.mode=MULTIRUN"],
            run_mode=RunMode.MULTIRUN,
        )
        yield HydraContext(config_loader=loader, callbacks=Callbacks()), master


def hydras_own(context, master, overrides, index):
    """A job's config and .hydra/ files as Hydra's basic launcher and run_job make them."""
    config = context.config_loader.load_sweep_config(master, overrides)
    with open_dict(config):
        config.hydra.job.id = index
        config.hydra.job.num = index
    HydraConfig.instance().set_config(config)
    output_dir = os.path.join(str(config.hydra.sweep.dir), str(config.hydra.sweep.subdir))
    with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
        config.hydra.runtime.output_dir = os.path.abspath(output_dir)
    HydraConfig.instance().set_config(config)
    task = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
    files = {
        "config.yaml": OmegaConf.to_yaml(task),
        "hydra.yaml": OmegaConf.to_yaml(HydraConfig.instance().cfg),
        "overrides.yaml": OmegaConf.to_yaml(config.hydra.overrides.task),
    }
    return config, files


@pytest.mark.parametrize("keep_config", [True, False])
@pytest.mark.parametrize("name", SWEEPS)
def test_each_job_is_composed_as_hydra_composes_it(sweep, name, keep_config):
    context, master = sweep
    jobs = list(compose_jobs(context, master, SWEEPS[name], initial_job_idx=3, keep_config=lambda values: keep_config))
    assert [job.index for job in jobs] == list(range(3, 3 + len(jobs)))
    for job, overrides in zip(jobs, SWEEPS[name]):
        config, files = hydras_own(context, master, overrides, job.index)
        assert job.files == files
        assert job.output_dir == Path(config.hydra.runtime.output_dir)
        expected = OmegaConf.to_container(config, resolve=True)
        del expected["hydra"]
        assert job.values == expected
        if keep_config:
            assert OmegaConf.to_container(job.config) == OmegaConf.to_container(config)


def test_numbers_are_parsed_as_hydra_parses_them():
    parser = OverridesParser.create()
    for line in [
        "optim.lr=1e-06",
        "a.b_c=50",
        "seed=-3",
        "x=.5",
        "x=5.",
        "x=+2",
        "x=1E5",
        "x=1_000",
        "x=inf",
        "x=1e5x",
    ]:
        assert parse_override(parser, line) == parser.parse_override(line)
