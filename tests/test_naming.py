"""Run and job folders are named by what was set: TensorBoard shows these names."""

import yaml

from experiments.naming import MAX_OVERRIDES_LENGTH, folder_suffix
from helpers import run_cli


def test_a_folder_name_holds_the_overrides_without_nested_folders_and_shortened_when_long():
    assert folder_suffix("") == ""
    assert folder_suffix("model=scratch,optim.lr=1e-05") == "_model=scratch,optim.lr=1e-05"
    assert folder_suffix("data.path=/home/me/data/crops.csv,data=csv") == "_data.path=crops.csv,data=csv"
    assert folder_suffix(r"data.path=C:\data\crops.csv") == "_data.path=crops.csv"
    assert folder_suffix(r"data.targets=[price],data.path=my\ data/a\ b.csv") == "_data.targets=price,data.path=a_b.csv"
    many = ",".join(f"+trainer.setting_{i}={i}" for i in range(20))
    shortened = folder_suffix(many)
    assert len(shortened) <= MAX_OVERRIDES_LENGTH + len("_,and_20_more")
    assert shortened.startswith("_+trainer.setting_0=0,+trainer.setting_1=1,") and shortened.endswith("_more")
    assert int(shortened.rsplit(",and_", 1)[1].split("_")[0]) == 20 - shortened.count("=")
    assert folder_suffix("data.path=" + "x" * 200) == "_data.path=" + "x" * (MAX_OVERRIDES_LENGTH - 13) + "..."


def test_a_run_folder_is_named_by_its_time_stamp_and_overrides(tmp_path):
    result = run_cli("model=scratch", "optim.lr=1e-5", "trainer.max_epochs=1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp_path / "outputs" / "runs").iterdir()
    stamp, overrides = run_dir.name[:26], run_dir.name[27:]
    assert stamp.count("_") == 2 and overrides == "model=scratch,optim.lr=1e-5,trainer.max_epochs=1"
    assert (run_dir / "summary.json").is_file()
    # The name's = and , are no trouble where a command takes the folder.
    predicted = run_cli(f"run={run_dir}", "inputs=[[75,63,44]]", cwd=tmp_path, script="predict.py")
    assert predicted.returncode == 0 and "predicted apples" in predicted.stdout, predicted.stderr


def test_sweep_jobs_are_named_by_what_varies_and_a_path_makes_no_nested_folder(tmp_path):
    data = tmp_path / "my data" / "table.csv"
    data.parent.mkdir()
    data.write_text("x,y\n1,2\n2,4\n3,7\n4,8\n")
    result = run_cli(
        "-m",
        "experiment=sweep_lr_epochs",
        "data=csv",
        f"data.path={data}",
        "data.targets=[y]",
        "optim.lr=1e-3,1e-2",
        "trainer.max_epochs=2",
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    jobs = sorted(path.name for path in (tmp_path / "sweep").iterdir() if path.is_dir())
    assert jobs == ["0_optim.lr=0.001", "1_optim.lr=0.01"]
    # What the jobs share is still recorded, in each job's .hydra/ and in the sweep's multirun.yaml.
    recorded = yaml.safe_load((tmp_path / "sweep" / "0_optim.lr=0.001" / ".hydra" / "overrides.yaml").read_text())
    assert {"experiment=sweep_lr_epochs", f"data.path={data}".replace(" ", "\\ "), "optim.lr=0.001"} <= set(recorded)

    run = run_cli("data=csv", f"data.path={data}", "data.targets=[y]", "trainer.max_epochs=1", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    (run_dir,) = (tmp_path / "outputs" / "runs").iterdir()
    assert run_dir.name.endswith("_data.path=table.csv,data.targets=y,data=csv,trainer.max_epochs=1")
