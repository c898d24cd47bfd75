"""predict.py: a trained run's predictions in the data's units, and clear errors."""

import csv
from pathlib import Path

import pytest
import torch

from experiments.predict import load_run, main
from experiments.train import train

NEW_REGION = [75.0, 63.0, 44.0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from experiments.train import CONFIG_DIR

    folder = tmp_path_factory.mktemp("run")
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["accelerator=cpu", "optim=lbfgs", "data.standardize=true",
                                           "+trainer.precision=64", "trainer.max_epochs=20"], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.output_dir = str(folder)
    (folder / ".hydra").mkdir()
    from omegaconf import OmegaConf
    OmegaConf.save(cfg, folder / ".hydra" / "config.yaml")  # as Hydra does for a real run
    train(cfg)
    return folder


def test_the_tutorials_new_region(run_dir, capsys):
    assert main([f"run={run_dir}", f"inputs=[{NEW_REGION}]"]) == 0
    header, row = capsys.readouterr().out.strip().splitlines()
    assert header.split() == ["temp", "rainfall", "humidity", "predicted", "apples", "predicted", "oranges"]
    apples, oranges = map(float, row.split()[3:])
    assert apples == pytest.approx(53.8, abs=0.05) and oranges == pytest.approx(66.8, abs=0.05)


def test_predictions_are_the_models_forward_pass_and_least_squares(run_dir):
    module, features, targets = load_run(run_dir)
    x = torch.tensor([NEW_REGION], dtype=torch.float64)
    with torch.no_grad():
        by_hand = module.scaler.unscale_targets(module.model(module.scaler.scale_features(x)))
        predicted = module.predict(x)
    assert torch.equal(predicted, by_hand)
    from experiments.datasets import builtin
    from experiments.reference import Moments, reference
    crops = builtin("crops")
    optimum = reference(Moments(crops.features, crops.targets))
    assert torch.allclose(predicted[0], x[0] @ optimum.weights.T + optimum.bias, rtol=1e-6)


def test_inputs_from_a_csv_by_column_name_and_to_a_csv(run_dir, tmp_path):
    (tmp_path / "new.csv").write_text("humidity,region,temp,rainfall\n44,P,75,63\n43,Q,73,67\n")
    out = tmp_path / "preds.csv"
    assert main([f"run={run_dir}", f"input_csv={tmp_path / 'new.csv'}", f"output={out}"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [float(rows[0][k]) for k in ("temp", "rainfall", "humidity")] == NEW_REGION
    assert float(rows[0]["apples"]) == pytest.approx(53.8, abs=0.05)


@pytest.mark.parametrize("args,message", [
    (["inputs=[[75,63]]"], "each row needs 3 numbers (temp, rainfall, humidity)"),
    (["inputs=[[75,63,x]]"], "not a number"),
    ([], "give the inputs either as inputs"),
    (["inputs=[[1,2,3]]", "colour=red"], "unknown colour"),
    (["inputs=75"], "each row needs 3 numbers"),
    (["inputs=[[1,2,3]]", "output=/nonexistent/dir/p.csv"], "cannot write output="),
])
def test_bad_inputs(run_dir, capsys, args, message):
    assert main([f"run={run_dir}", *args]) == 2
    assert message in capsys.readouterr().err


def test_bad_runs_and_files(run_dir, tmp_path, capsys):
    assert main([f"run={tmp_path / 'nope'}", "inputs=[[1,2,3]]"]) == 2
    assert "no such run folder" in capsys.readouterr().err
    (tmp_path / "new.csv").write_text("temp,humidity\n1,2\n")
    assert main([f"run={run_dir}", f"input_csv={tmp_path / 'new.csv'}"]) == 2
    assert "has no column 'rainfall'" in capsys.readouterr().err
    import shutil
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    (broken / "checkpoints" / "last.ckpt").write_bytes(b"not a checkpoint")
    assert main([f"run={broken}", "inputs=[[1,2,3]]"]) == 2
    assert "may be corrupted" in capsys.readouterr().err
    (broken / "checkpoints" / "last.ckpt").unlink()
    assert main([f"run={broken}", "inputs=[[1,2,3]]"]) == 2
    assert "has no checkpoints/last.ckpt" in capsys.readouterr().err
