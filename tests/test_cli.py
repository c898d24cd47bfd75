"""The commands as a user types them, in a subprocess: output folders, sweeps and error messages."""

import json
import subprocess
import sys

import pytest
import torch

from helpers import REPO, run_cli

pytestmark = pytest.mark.slow


def test_single_run_writes_its_folder_and_prints_the_result(tmp_path):
    result = run_cli("model=scratch", "optim.lr=1e-5", "trainer.max_epochs=3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp_path / "outputs" / "runs").iterdir()
    assert sorted(p.name for p in run_dir.iterdir() if not p.name.startswith("events")) == [
        ".hydra",
        "checkpoints",
        "history.csv",
        "hparams.yaml",
        "landscape.json",
        "landscape.png",
        "summary.json",
    ]
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["last.ckpt"]  # written once, at the end
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["model"], summary["lr"], summary["epochs"]) == ("scratch", 1e-5, 3)
    assert "loss on the whole data set" in result.stdout
    assert f"tensorboard --logdir outputs/runs/{run_dir.name}" in result.stdout


def test_multirun_makes_one_folder_and_one_event_file_per_job(tmp_path):
    result = run_cli("-m", "optim.lr=1e-6,1e-5", "trainer.max_epochs=1,2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (sweep_dir,) = (tmp_path / "outputs" / "multirun").iterdir()
    jobs = sorted(p.name for p in sweep_dir.iterdir() if p.is_dir())
    assert jobs == [
        "0_optim.lr=1e-06,trainer.max_epochs=1",
        "1_optim.lr=1e-06,trainer.max_epochs=2",
        "2_optim.lr=1e-05,trainer.max_epochs=1",
        "3_optim.lr=1e-05,trainer.max_epochs=2",
    ]
    for job in jobs:
        assert len(list((sweep_dir / job).glob("events.out.tfevents.*"))) == 1
        summary = json.loads((sweep_dir / job / "summary.json").read_text())
        lr, epochs = (value for _, value in (item.split("=") for item in job.split("_", 1)[1].split(",")))
        assert (float(lr), int(epochs)) == (summary["lr"], summary["epochs"])


@pytest.mark.parametrize(
    "override,message",
    [
        ("optim.lr=0", "optim.lr must be a positive, finite number"),
        ("data.shuffle=maybe", "data.shuffle must be true or false"),
        ("seed=abc", "seed must be a whole number"),
        ("trainer.max_epochs=ten", "trainer.max_epochs must be a whole number"),
        ("model=scratch model.bias_init=ones", "bias_init must be 'randn' or 'zeros'"),
        ("optim.momentum=-1", "optim: Invalid momentum value"),
        pytest.param(
            "accelerator=gpu",
            "PyTorch sees no GPU here",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU"),
        ),
    ],
)
def test_bad_values_give_one_line_and_write_nothing(tmp_path, override, message):
    result = run_cli(*override.split(), cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.glob("outputs/runs/*")) == []


@pytest.mark.parametrize(
    "override,message",
    [
        ("optim.learning_rate=1", "Could not override 'optim.learning_rate'"),
        ("model=mlp", "Could not find 'model/mlp'"),
        ("data=crop", "Could not find 'data/crop'"),
    ],
)
def test_unknown_keys_and_options_get_hydras_message_without_a_traceback(tmp_path, override, message):
    result = run_cli(override, cwd=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [["optim=sdg"], ["optim.lr=-1"], ["seed=abc"], ["--help"]])
def test_mistakes_and_help_are_answered_before_torch_loads(tmp_path, args):
    report = "import sys; print('torch loaded' if 'torch' in sys.modules else 'torch not loaded', file=sys.stderr)"
    code = (
        f"import atexit, runpy, sys; atexit.register(lambda: exec({report!r})); "
        f"sys.argv = ['train.py', *{args!r}]; runpy.run_path({str(REPO / 'train.py')!r}, run_name='__main__')"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.stderr.strip().endswith("torch not loaded"), result.stderr
    assert result.returncode == (0 if args == ["--help"] else 2 if args != ["optim=sdg"] else 1)


def test_every_command_explains_itself(tmp_path):
    for script, usage in (
        ("train.py", "python train.py [group=option ...]"),
        ("predict.py", "python predict.py run=RUN_FOLDER"),
        ("compare.py", "usage: compare.py"),
    ):
        result = run_cli("--help", cwd=tmp_path, script=script)
        assert result.returncode == 0 and usage in result.stdout, script
    assert not (tmp_path / "outputs").exists()
