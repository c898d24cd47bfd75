"""train(cfg) end to end, in process, on configs composed exactly as the command line composes them."""

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from hydra.errors import ConfigCompositionException

from experiments import stopping
from experiments.cli import type_error_line
from experiments.errors import UserError
from experiments.training import train
from helpers import read_scalars

ALL_COMBINATIONS = [
    (data, model, optim)
    for data in ("crops", "crops5", "crops5_tutorial000", "toy")
    for model in ("linear", "scratch")
    for optim in ("sgd", "gd")
]


@pytest.mark.parametrize("data,model,optim", ALL_COMBINATIONS)
def test_every_combination_composes_and_trains(make_cfg, data, model, optim):
    cfg = make_cfg(f"data={data}", f"model={model}", f"optim={optim}", "trainer.max_epochs=1")
    summary = train(cfg)
    assert summary["status"] == "ok" and summary["epochs"] == 1 and summary["steps"] == 1
    assert (summary["data"], summary["model"], summary["optim"]) == (data, model, optim)
    assert (Path(cfg.output_dir) / "checkpoints" / "last.ckpt").is_file()


def test_summary_holds_the_result_in_the_datas_units(make_cfg):
    cfg = make_cfg("trainer.max_epochs=5", "data.batch_size=4", "data.shuffle=true")
    summary = train(cfg)
    saved = json.loads((Path(cfg.output_dir) / "summary.json").read_text())
    assert saved == summary  # JSON keeps every float exactly
    for key in (
        "status",
        "final_loss",
        "optimal_loss",
        "loss_ratio",
        "weights",
        "bias",
        "feature_names",
        "target_names",
        "epochs",
        "steps",
        "seconds",
        "data",
        "model",
        "optim",
        "lr",
        "batch_size",
        "max_epochs",
        "seed",
    ):
        assert key in saved, key
    assert saved["steps"] == 5 * 4  # 15 rows in batches of 4
    assert saved["feature_names"] == ["temp", "rainfall", "humidity"]
    assert saved["target_names"] == ["apples", "oranges"]
    assert torch.tensor(saved["weights"]).shape == (2, 3) and len(saved["bias"]) == 2
    assert saved["loss_ratio"] == pytest.approx(saved["final_loss"] / saved["optimal_loss"])

    # The reported loss is the model's loss on the whole data set, recomputed from the reported weights.
    from experiments.tables import builtin_table

    crops = builtin_table("crops")
    weights, bias = (
        torch.tensor(saved["weights"], dtype=torch.float64),
        torch.tensor(saved["bias"], dtype=torch.float64),
    )
    predictions = crops.features.double() @ weights.T + bias
    assert saved["final_loss"] == pytest.approx(torch.mean((predictions - crops.targets) ** 2).item(), rel=1e-4)


def test_tensorboard_file_holds_the_promised_scalars(make_cfg):
    cfg = make_cfg("trainer.max_epochs=3")
    summary = train(cfg)
    run_dir = Path(cfg.output_dir)
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1
    scalars = read_scalars(run_dir)
    assert [step for step, _ in scalars["train/full_loss"]] == [0, 1, 2, 3]
    assert [step for step, _ in scalars["train/loss"]] == [1, 2, 3]
    assert scalars["train/full_loss"][-1][1] == pytest.approx(summary["final_loss"], rel=1e-6)
    assert scalars["train/optimal_loss"][0][1] == pytest.approx(summary["optimal_loss"], rel=1e-6)
    assert scalars["train/loss_ratio"][-1][1] == pytest.approx(summary["loss_ratio"], rel=1e-6)
    for target, row in zip(("apples", "oranges"), summary["weights"]):
        for feature, weight in zip(("temp", "rainfall", "humidity"), row):
            assert scalars[f"weights/{target}/{feature}"][-1][1] == pytest.approx(weight, rel=1e-6)
    assert scalars["weights/oranges/bias"][-1][1] == pytest.approx(summary["bias"][1], rel=1e-6)
    assert not [tag for tag in scalars if len(scalars[tag]) == 1]  # no chart of a single dot
    # history.csv holds the same epochs at full precision, the losses first.
    history = (run_dir / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,train/full_loss,train/optimal_loss,train/loss_ratio,")
    assert [int(line.split(",")[0]) for line in history[1:]] == [0, 1, 2, 3]
    assert float(history[-1].split(",")[1]) == summary["final_loss"]


def test_epochs_measured_before_an_error_are_kept(make_cfg, monkeypatch):
    """Epochs are written to TensorBoard in batches; an error mid-training must not lose them."""
    from experiments.module import RegressionModule

    training_step = RegressionModule.training_step

    def failing_in_epoch_3(self, bundle, bundle_index):
        if self.current_epoch == 3:
            raise RuntimeError("boom")
        return training_step(self, bundle, bundle_index)

    monkeypatch.setattr(RegressionModule, "training_step", failing_in_epoch_3)
    cfg = make_cfg("trainer.max_epochs=10")
    with pytest.raises(RuntimeError, match="boom"):
        train(cfg)
    assert [step for step, _ in read_scalars(Path(cfg.output_dir))["train/full_loss"]] == [0, 1, 2, 3]


def test_ctrl_c_before_training_starts_ends_the_run_without_a_traceback(make_cfg, monkeypatch):
    from experiments.datamodule import RegressionDataModule

    def interrupted(self, stage):
        raise KeyboardInterrupt

    monkeypatch.setattr(RegressionDataModule, "setup", interrupted)
    cfg = make_cfg("trainer.max_epochs=5")
    with pytest.raises(stopping.Stopped) as stopped:
        train(cfg)
    assert stopped.value.exit_status == 130
    assert not (Path(cfg.output_dir) / "summary.json").exists()


def test_ctrl_c_while_epochs_are_written_repeats_none(make_cfg, monkeypatch):
    """Ctrl-C most often lands while a batch of epochs is being written (waiting for the writer);
    the final write that follows it must not write them a second time."""
    from experiments.logger import EpochLogger

    write_pending, writes = EpochLogger.write_pending, []

    def interrupted_while_waiting_in_second_write(self):
        if self._pending:
            writes.append(len(self._pending))
            if len(writes) == 2:  # the first write is epoch 0, at the start; the second epochs 1 and 2

                def interrupt_once():
                    del self.experiment.flush  # later writes wait as usual
                    raise KeyboardInterrupt

                self.experiment.flush = interrupt_once
        write_pending(self)

    monkeypatch.setattr(EpochLogger, "MAX_PENDING", 2)
    monkeypatch.setattr(EpochLogger, "WRITE_SECONDS", 3600.0)
    monkeypatch.setattr(EpochLogger, "write_pending", interrupted_while_waiting_in_second_write)
    cfg = make_cfg("trainer.max_epochs=10")
    with pytest.raises(stopping.Stopped):
        train(cfg)
    assert json.loads((Path(cfg.output_dir) / "summary.json").read_text())["epochs"] == 2
    assert [step for step, _ in read_scalars(Path(cfg.output_dir))["train/full_loss"]] == [0, 1, 2]


def test_hparams_and_picture_are_logged(make_cfg):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

    cfg = make_cfg("data=toy", "model=scratch", "optim.lr=1e-3", "trainer.max_epochs=2")
    train(cfg)
    events = EventAccumulator(cfg.output_dir, size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    assert sorted(events.Tags()["images"]) == ["weights/fit", "weights/landscape"]  # after the loss charts
    content = events.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {m.name.tag for m in experiment.metric_infos} == {"train/full_loss", "train/loss_ratio", "val/loss"}
    session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = session.session_start_info.hparams
    assert hparams["data"].string_value == "toy" and hparams["model"].string_value == "scratch"
    assert hparams["lr"].number_value == pytest.approx(1e-3) and hparams["batch_size"].number_value == 15
    assert hparams["shuffle"].bool_value is False and hparams["momentum"].number_value == 0
    assert set(hparams) == {info.name for info in experiment.hparam_infos}
    ended = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_end_info"])
    assert ended.session_end_info.status == api_pb2.STATUS_SUCCESS


def test_hparams_yaml_is_written_as_lightning_writes_it(make_cfg, tmp_path):
    from lightning.pytorch.core.saving import save_hparams_to_yaml

    cfg = make_cfg("trainer.max_epochs=1")
    summary = train(cfg)
    save_hparams_to_yaml(
        tmp_path / "lightning.yaml",
        {key: summary[key] for key in yaml.safe_load((Path(cfg.output_dir) / "hparams.yaml").read_text())},
    )
    assert (Path(cfg.output_dir) / "hparams.yaml").read_text() == (tmp_path / "lightning.yaml").read_text()


def test_loss_falls_and_gd_on_the_toy_set_reaches_the_optimum(make_cfg):
    summary = train(make_cfg("data=toy", "optim=gd", "optim.lr=0.02", "trainer.max_epochs=1000"))
    assert summary["status"] == "ok"
    assert summary["loss_ratio"] < 1.001
    assert summary["weights"][0][0] == pytest.approx(summary["optimal_weights"][0][0], rel=1e-2)


def test_a_learning_rate_just_above_the_stable_limit_is_caught_before_overflow(make_cfg):
    # Here the loss grows slowly, and would stay finite for hundreds of epochs.
    summary = train(make_cfg("optim.lr=1.25e-4", "trainer.max_epochs=100"))
    assert summary["lr"] > summary["max_stable_lr"]
    assert summary["status"] == "diverged" and summary["diverged_at_epoch"] < 100


def test_trains_in_float64_with_precision_64(make_cfg):
    summary = train(
        make_cfg("trainer.precision=64", "data=toy", "optim=gd", "optim.lr=0.02", "trainer.max_epochs=3000")
    )
    assert summary["status"] == "ok"
    assert summary["loss_ratio"] == pytest.approx(1.0, abs=1e-9)  # float32 stops near 1e-7


def test_a_diverging_run_stops_and_says_so(make_cfg, capsys):
    cfg = make_cfg("optim.lr=1e-2", "trainer.max_epochs=100")
    summary = train(cfg)
    assert summary["status"] == "diverged"
    assert 1 <= summary["diverged_at_epoch"] < 100 and summary["epochs"] == summary["diverged_at_epoch"]
    saved = json.loads((Path(cfg.output_dir) / "summary.json").read_text())
    assert saved["status"] == "diverged" and saved["diverged_at_epoch"] == summary["diverged_at_epoch"]
    assert "Diverged at epoch" in capsys.readouterr().out


def test_an_overflowing_loss_is_recorded_as_null(make_cfg):
    cfg = make_cfg("optim.lr=1e36", "trainer.max_epochs=5")  # the float32 weights overflow in one step
    assert train(cfg)["final_loss"] == math.inf
    text = (Path(cfg.output_dir) / "summary.json").read_text()
    saved = json.loads(text, parse_constant=lambda name: pytest.fail(f"summary.json holds {name}, which is not JSON"))
    assert saved["status"] == "diverged" and saved["final_loss"] is None and saved["loss_ratio"] is None
    assert all(w is None or math.isfinite(w) for row in saved["weights"] for w in row)


def test_runs_are_reproducible_from_the_seed(make_cfg):
    overrides = ("data.batch_size=5", "data.shuffle=true", "trainer.max_epochs=3")
    first, again = train(make_cfg(*overrides)), train(make_cfg(*overrides))
    other = train(make_cfg(*overrides, "seed=7"))
    assert first["weights"] == again["weights"]
    assert first["weights"] != other["weights"]


@pytest.mark.parametrize(
    "override,message",
    [
        ("optim.lr=0", "optim.lr must be a positive, finite number"),
        ("optim.lr=-1e-5", "optim.lr must be a positive, finite number"),
        ("optim.lr=inf", "optim.lr must be a positive, finite number"),
        ("optim.lr=nan", "optim.lr must be a positive, finite number"),
        ("trainer.max_epochs=0", "trainer.max_epochs must be a whole number of at least 1"),
        ("data.batch_size=0", "data.batch_size must be a whole number of at least 1"),
        ("seed=-1", "seed must be a whole number"),
        ("data.name=crop", "data.name='crop' is not a built-in data set"),
        ("trainer.devices=2", "trainer.devices must be 1"),
        ("+optim.foo=1", "optim: .*unexpected keyword argument 'foo'"),
        ("+trainer.max_epoch=5", "unexpected keyword argument 'max_epoch'"),
        ("trainer.precision=banana", "trainer.precision must be 32 or 64"),
        ("trainer.precision=bf16-mixed", "Half precision keeps about 3 significant digits"),
        ("+trainer.max_steps=10", "trainer.max_steps is not supported here"),
        ("+trainer.gradient_clip_val=1.0", "trainer.gradient_clip_val is not supported here"),
    ],
)
def test_bad_settings_are_refused(make_cfg, override, message):
    with pytest.raises(UserError, match=message):
        train(make_cfg(override))


@pytest.mark.parametrize(
    "override,line",
    [
        ("seed=abc", "seed must be a whole number; got 'abc'."),
        ("data.shuffle=maybe", "data.shuffle must be true or false; got 'maybe'."),
        ("trainer.max_epochs=ten", "trainer.max_epochs must be a whole number; got 'ten'."),
        ("optim.lr=fast", "optim.lr must be a number; got 'fast'."),
        ("data.batch_size=5.5", "data.batch_size must be a whole number; got 5.5."),
    ],
)
def test_values_of_the_wrong_type_are_refused_by_the_schema_in_one_line(make_cfg, override, line):
    with pytest.raises(ConfigCompositionException) as error:
        make_cfg(override)
    assert type_error_line(error.value) == line


def test_often_set_keys_work_without_a_plus(make_cfg):
    plain = train(make_cfg("trainer.max_epochs=20"))
    cfg = make_cfg("optim.momentum=0.9", "trainer.precision=64", "trainer.max_epochs=20")
    heavy = train(cfg)
    checkpoint = torch.load(Path(cfg.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["optimizer_states"][0]["param_groups"][0]["momentum"] == 0.9
    assert checkpoint["state_dict"]["model.weight"].dtype == torch.float64
    assert heavy["final_loss"] < plain["final_loss"]  # momentum gets further in as many steps


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize(
    "overrides",
    [
        ("trainer.max_epochs=2", "data.shuffle=true", "data.batch_size=5"),
        (
            "data=synthetic",
            "data.n=2000",
            "data.val_fraction=0.1",
            "data.standardize=true",
            "optim.lr=0.1",
            "trainer.max_epochs=3",
        ),
    ],
)
def test_trains_on_the_gpu(make_cfg, overrides):
    summary = train(make_cfg("accelerator=gpu", *overrides))
    assert summary["status"] == "ok" and summary["device"] == "cuda" and summary["loss_ratio"] < math.inf


def test_record_checksums_are_tensorboards_own():
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as pure_python

    from experiments.events import masked_crc32c

    for data in (b"", b"a", bytes(range(256)) * 3):
        assert masked_crc32c(data) == pure_python(data)
