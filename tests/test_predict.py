"""predict.py: a trained run's predictions in the data's units, clear errors, and run folders read as data."""

import csv
import shutil

import pytest
import torch
from hydra import compose, initialize_config_dir

from experiments.config import CONFIG_DIR, compose_run
from experiments.errors import UserError
from experiments.least_squares import QRFactor, least_squares
from experiments.predict import predict
from experiments.runs import load_trained_module
from experiments.tables import builtin_table
from experiments.training import train
from helpers import run_cli

NEW_REGION = [75.0, 63.0, 44.0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    train(
        compose_run(
            [
                "accelerator=cpu",
                "optim=lbfgs",
                "data.standardize=true",
                "trainer.precision=64",
                "trainer.max_epochs=20",
            ],
            folder,
        )
    )
    return folder


def predict_config(*overrides: str):
    """predict.py's config for `overrides`, composed as its command line composes it."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("predict", overrides=list(overrides))


def test_the_tutorials_new_region(run_dir, capsys):
    predict(predict_config(f"run={run_dir}", f"inputs=[{NEW_REGION}]"))
    header, row = capsys.readouterr().out.strip().splitlines()
    assert header.split() == ["temp", "rainfall", "humidity", "predicted", "apples", "predicted", "oranges"]
    apples, oranges = map(float, row.split()[3:])
    assert apples == pytest.approx(53.8, abs=0.05) and oranges == pytest.approx(66.8, abs=0.05)


def test_predictions_are_the_models_forward_pass_and_least_squares(run_dir):
    module, features, targets = load_trained_module(run_dir)
    x = torch.tensor([NEW_REGION], dtype=torch.float64)
    with torch.no_grad():
        by_hand = module.scaler.unscale_targets(module.model(module.scaler.scale_features(x)))
        predicted = module.predict(x)
    assert torch.equal(predicted, by_hand)
    crops = builtin_table("crops")
    optimum = least_squares(QRFactor(crops.features, crops.targets))
    assert torch.allclose(predicted[0], x[0] @ optimum.weights.T + optimum.bias, rtol=1e-6)


def test_inputs_from_a_csv_by_column_name_and_to_a_csv(run_dir, tmp_path):
    (tmp_path / "new.csv").write_text("humidity,region,temp,rainfall\n44,P,75,63\n43,Q,73,67\n")
    out = tmp_path / "preds.csv"
    predict(predict_config(f"run={run_dir}", f"input_csv={tmp_path / 'new.csv'}", f"output={out}"))
    rows = list(csv.DictReader(out.open()))
    assert [float(rows[0][k]) for k in ("temp", "rainfall", "humidity")] == NEW_REGION
    assert float(rows[0]["apples"]) == pytest.approx(53.8, abs=0.05)


@pytest.mark.parametrize(
    "args,message",
    [
        (["inputs=[[75,63]]"], r"each row needs 3 numbers \(temp, rainfall, humidity\)"),
        (["inputs=[[75,63,x]]"], "not a number"),
        ([], "give the inputs either as inputs"),
        (["inputs=75"], "each row needs 3 numbers"),
        (["inputs=[[1e39,2,3]]"], "too large for float32"),
        (["inputs=[[1,2,3]]", "output=/nonexistent/dir/p.csv"], "cannot write output="),
    ],
)
def test_bad_inputs(run_dir, args, message):
    with pytest.raises(UserError, match=message):
        predict(predict_config(f"run={run_dir}", *args))


def test_bad_runs_and_files(run_dir, tmp_path):
    with pytest.raises(UserError, match="no such run folder"):
        predict(predict_config(f"run={tmp_path / 'nope'}", "inputs=[[1,2,3]]"))
    (tmp_path / "new.csv").write_text("temp,humidity\n1,2\n")
    with pytest.raises(UserError, match="has no column 'rainfall'"):
        predict(predict_config(f"run={run_dir}", f"input_csv={tmp_path / 'new.csv'}"))
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    (broken / "checkpoints" / "last.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="may be corrupted"):
        predict(predict_config(f"run={broken}", "inputs=[[1,2,3]]"))
    (broken / "checkpoints" / "last.ckpt").unlink()
    with pytest.raises(UserError, match="has no checkpoints/last.ckpt"):
        predict(predict_config(f"run={broken}", "inputs=[[1,2,3]]"))


def test_a_run_folder_is_read_as_data_and_nothing_it_names_runs(run_dir, tmp_path, capsys):
    planted, victim = tmp_path / "planted", tmp_path / "victim.txt"
    shutil.copytree(run_dir, planted)
    victim.write_text("precious")
    (planted / ".hydra").mkdir(exist_ok=True)
    (planted / ".hydra" / "config.yaml").write_text(  # if instantiated, this truncates the victim
        f"model:\n  _target_: builtins.open\n  file: {victim}\n  mode: w\n"
        f"data:\n  _target_: torch.load\n  f: {victim}\n  weights_only: false\n"
    )
    predict(predict_config(f"run={planted}", f"inputs=[{NEW_REGION}]"))
    assert victim.read_text() == "precious"
    assert "53.79" in capsys.readouterr().out

    checkpoint = torch.load(planted / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["model_kind"] = "os.system"
    torch.save(checkpoint, planted / "checkpoints" / "last.ckpt")
    with pytest.raises(UserError, match="model of kind 'os.system', which this tool does not know"):
        predict(predict_config(f"run={planted}", f"inputs=[{NEW_REGION}]"))


@pytest.mark.slow
def test_the_command_answers_help_and_mistakes_in_one_line(run_dir, tmp_path):
    help_text = run_cli("--help", cwd=tmp_path, script="predict.py")
    assert help_text.returncode == 0 and "python predict.py run=RUN_FOLDER" in help_text.stdout
    bad = run_cli(f"run={run_dir}", "inputs=[[75,63]]", cwd=tmp_path, script="predict.py")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "Error: inputs: each row needs 3 numbers (temp, rainfall, humidity); row 1 is [75, 63]."
    ]
    unknown = run_cli(f"run={run_dir}", "inputs=[[1,2,3]]", "colour=red", cwd=tmp_path, script="predict.py")
    assert unknown.returncode != 0 and "Could not override 'colour'" in unknown.stderr
    good = run_cli(f"run={run_dir}", "inputs=[[75,63,44]]", cwd=tmp_path, script="predict.py")
    assert good.returncode == 0 and "53.79" in good.stdout
    assert list(tmp_path.iterdir()) == []  # predicting writes nothing


@pytest.fixture
def float32_run(run_dir, tmp_path):
    """A copy of the trained run with its model in float32, as trainer.precision=32 leaves it."""
    copy = tmp_path / "float32"
    shutil.copytree(run_dir, copy)
    checkpoint = torch.load(copy / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["state_dict"] = {key: tensor.float() for key, tensor in checkpoint["state_dict"].items()}
    torch.save(checkpoint, copy / "checkpoints" / "last.ckpt")
    return copy


def test_predictions_too_large_for_the_model_are_refused(float32_run, tmp_path):
    with pytest.raises(UserError) as error:
        predict(predict_config(f"run={float32_run}", "inputs=[[1,2,3],[0,3e38,3e38]]"))
    assert str(error.value) == (
        "inputs: the predictions for row 2 are too large for the model's float32 (row 2: 0, 3e+38, 3e+38 gives "
        "inf, inf); give inputs nearer the size of the data the run was trained on."
    )
    (tmp_path / "new.csv").write_text("temp,rainfall,humidity\n0,3e38,3e38\n-3e38,3e38,3e38\n")
    with pytest.raises(UserError, match=r"the predictions for rows 1, 2 are too large for the model's float32"):
        predict(predict_config(f"run={float32_run}", f"input_csv={tmp_path / 'new.csv'}"))
    assert predict(predict_config(f"run={float32_run}", "inputs=[[1e30,63,44]]")).isfinite().all()


def test_a_model_with_weights_that_are_not_finite_is_refused(run_dir, tmp_path):
    broken = tmp_path / "nan"
    shutil.copytree(run_dir, broken)
    checkpoint = torch.load(broken / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["state_dict"]["model.weight"].fill_(float("nan"))
    torch.save(checkpoint, broken / "checkpoints" / "last.ckpt")
    with pytest.raises(UserError, match=r"^the run's model holds numbers that are not finite \(nan or inf\)"):
        predict(predict_config(f"run={broken}", f"inputs=[{NEW_REGION}]"))


FORM = (
    "inputs must be a list of rows of 3 numbers (temp, rainfall, humidity), quoted for the shell: "
    "'inputs=[[75,63,44]]' (more rows: 'inputs=[[...],[...]]'); got "
)


@pytest.mark.parametrize(
    "inputs,got",
    [
        ("{a:1}", "{'a': 1}"),
        ("abc", "'abc'"),
        ("[]", "[]"),
        ("[[[1,2,3]]]", "[[[1, 2, 3]]]"),
        ("[[1,2,3],{a:1}]", None),
    ],
)
def test_inputs_of_the_wrong_form_are_answered_with_the_form(run_dir, inputs, got):
    with pytest.raises(UserError) as error:
        predict(predict_config(f"run={run_dir}", f"inputs={inputs}"))
    assert str(error.value) == FORM + (got or "[[1, 2, 3], {'a': 1}]") + "."


def test_values_that_cannot_be_resolved_or_are_missing_are_one_line(run_dir):
    with pytest.raises(UserError, match=r"^inputs: Interpolation key 'foo' not found; give plain values: python"):
        predict(predict_config(f"run={run_dir}", "inputs=${foo}"))
    with pytest.raises(UserError, match=r"^run= must be given: python predict.py run="):
        predict(predict_config("inputs=[[1,2,3]]"))
    with pytest.raises(
        UserError, match=r"row 1 holds a number that is not finite or too large .*: about 1e\+400, 2, 3"
    ):
        predict(predict_config(f"run={run_dir}", f"inputs=[[1{'0' * 400},2,3]]"))


def test_an_input_csv_that_is_a_device_is_refused(run_dir):
    with pytest.raises(UserError, match=r"^input_csv: /dev/zero is a character device, .* give a regular CSV file\.$"):
        predict(predict_config(f"run={run_dir}", "input_csv=/dev/zero"))


def edited_checkpoint(run_dir, folder, edit):
    """A copy of the run whose checkpoint `edit` changed, saved by torch.save as training saves it."""
    shutil.copytree(run_dir, folder)
    checkpoint = torch.load(folder / "checkpoints" / "last.ckpt", weights_only=True)
    edit(checkpoint)
    torch.save(checkpoint, folder / "checkpoints" / "last.ckpt")
    return folder


@pytest.mark.parametrize(
    "edit,message",
    [
        (
            lambda c: c["state_dict"].update({"model.weight": torch.zeros(2, 4, dtype=torch.float64)}),
            "its model.weight is 2 x 4, but it names 3 features (temp, rainfall, humidity) and 2 targets "
            "(apples, oranges), which need 2 x 3",
        ),
        (
            lambda c: c["RegressionDataModule"].update({"feature_names": ["temp", "rainfall"]}),
            "its model.weight is 2 x 3, but it names 2 features (temp, rainfall)",
        ),
        (lambda c: c["RegressionDataModule"].update({"target_names": "apples"}), "its target names are 'apples'"),
        (lambda c: c["RegressionDataModule"].update({"feature_names": []}), "its feature names are []"),
        (lambda c: c["RegressionDataModule"].update({"feature_names": ["a", "a", "b"]}), "it names a feature twice"),
        (lambda c: c["state_dict"].update({"model.weight": [[1.0, 2.0, 3.0]] * 2}), "its state_dict is not a set"),
        (lambda c: c.update({"state_dict": [1, 2]}), "its state_dict is not a set of tensors"),
        (
            lambda c: c["state_dict"].update({"model.weight": torch.zeros(2, 3, dtype=torch.int64)}),
            "its model.weight holds int64 numbers, not float32 or float64",
        ),
    ],
)
def test_a_checkpoint_whose_tensors_do_not_match_its_names_is_one_line(run_dir, tmp_path, edit, message):
    broken = edited_checkpoint(run_dir, tmp_path / "broken", edit)
    with pytest.raises(UserError) as error:
        predict(predict_config(f"run={broken}", "inputs=[[1,2,3]]"))
    assert str(error.value).startswith(f"{broken / 'checkpoints' / 'last.ckpt'} is damaged: {message}")
    assert str(error.value).endswith("Train the run again.") and "\n" not in str(error.value)


def test_a_checkpoint_with_a_model_kind_that_is_not_a_name_is_one_line(run_dir, tmp_path):
    broken = edited_checkpoint(run_dir, tmp_path / "broken", lambda c: c.update({"model_kind": ["Linear"]}))
    with pytest.raises(UserError, match=r"holds a model of kind \['Linear'\], which this tool does not know"):
        predict(predict_config(f"run={broken}", "inputs=[[1,2,3]]"))


@pytest.mark.slow
def test_the_command_answers_overflow_and_malformed_inputs_in_one_line(float32_run, tmp_path):
    overflow = run_cli(f"run={float32_run}", "inputs=[[0,3e38,3e38]]", cwd=tmp_path, script="predict.py")
    assert overflow.returncode == 2 and overflow.stdout == ""
    assert overflow.stderr.strip().splitlines() == [
        "Error: inputs: the predictions for row 1 are too large for the model's float32 (row 1: 0, 3e+38, 3e+38 "
        "gives inf, inf); give inputs nearer the size of the data the run was trained on."
    ]
    # An unclosed list is Hydra's own parser's to answer, before predict.py runs: a few lines, no traceback.
    unclosed = run_cli(f"run={float32_run}", "inputs=[[1,2", cwd=tmp_path, script="predict.py")
    assert unclosed.returncode == 1 and "Traceback" not in unclosed.stderr
    assert "no viable alternative at input '[[1,2'" in unclosed.stderr
