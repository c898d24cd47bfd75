"""Users' CSV files: read by name, and every kind of bad file refused with a message that says where."""

from pathlib import Path

import pytest
import torch

from experiments.csv_table import read_csv
from experiments.errors import UserError
from experiments.training import train
from helpers import run_cli

GOOD = "temp,rainfall,humidity,apples\n73,67,43,56\n91,88,64,81\n87,134,58,119\n102,43,37,22\n69,96,70,103\n"


def write(tmp_path: Path, text: str | bytes, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_columns_are_chosen_by_name(tmp_path):
    table = read_csv(write(tmp_path, GOOD), targets=["apples"])
    assert (table.feature_names, table.target_names) == (["temp", "rainfall", "humidity"], ["apples"])
    assert table.features[2].tolist() == [87, 134, 58] and table.targets[:, 0].tolist() == [56, 81, 119, 22, 103]
    chosen = read_csv(write(tmp_path, GOOD), targets=["apples"], features=["humidity", "temp"])
    assert chosen.feature_names == ["humidity", "temp"] and chosen.features[0].tolist() == [43, 73]


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "is empty"),
        ("temp,apples\n", "has a header but no data rows"),
        ("temp,apples\n73,56\n91,abc\n", "line 3, column 'apples': 'abc' is not a number"),
        ("temp,apples\n73,56\n,81\n", "line 3, column 'temp': the cell is empty"),
        ("temp,apples\n73,nan\n", "line 2, column 'apples': 'nan' is not a finite number"),
        ("temp,apples\n73,inf\n", "'inf' is not a finite number"),
        ("temp,apples\n1e39,56\n", "line 2, column 'temp': 1e39 is too large for float32"),
        ("temp,apples\n73,56,1\n91,81\n", "line 2: 3 fields, but the header has 2"),
        ("temp,apples\n73\n", "line 2: 1 fields, but the header has 2"),
        ("temp,apples\n73,56,\n91,81,\n", "every data line ends with a ','"),
        ("temp,apples,\n73,56,\n91,81,\n", "every line ends with a ','"),
        ("temp;apples\n73;56\n", "looks separated by ';'"),
        ("temp\tapples\n73\t56\n", "looks separated by '\\\\t'"),
        ("temp,temp,apples\n1,2,3\n", "names column 'temp' twice"),
    ],
)
def test_bad_files_are_refused_with_the_place_and_the_value(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(UserError, match=message) as error:
        read_csv(path, targets=["apples"])
    assert str(path) in str(error.value) or "ends with" in message


def test_not_utf8_missing_and_directory(tmp_path):
    with pytest.raises(UserError, match=r"is not UTF-8 text \(byte 0xe9"):
        read_csv(write(tmp_path, b"temp,apples\n73,56\n" + b"caf\xe9,1\n"), targets=["apples"])
    with pytest.raises(UserError, match=f"there is no file {tmp_path / 'nope.csv'}"):
        read_csv(tmp_path / "nope.csv", targets=["apples"])
    with pytest.raises(UserError, match="is a directory"):
        read_csv(tmp_path, targets=["apples"])


def test_unknown_and_doubled_columns(tmp_path):
    path = write(tmp_path, GOOD)
    with pytest.raises(UserError, match="no column 'pears'; its columns are temp, rainfall, humidity, apples"):
        read_csv(path, targets=["pears"])
    with pytest.raises(UserError, match="no column 'wind'"):
        read_csv(path, targets=["apples"], features=["temp", "wind"])
    with pytest.raises(UserError, match="'apples' is both a feature and a target"):
        read_csv(path, targets=["apples"], features=["temp", "apples"])


def test_column_names_as_typed_on_the_command_line(make_cfg, tmp_path, monkeypatch):
    write(tmp_path, "x,2020,y\n1,2,3\n2,3,5\n3,5,7\n", "years.csv")
    monkeypatch.chdir(tmp_path)
    summary = train(
        make_cfg("data=csv", "data.path=years.csv", "data.targets=y", "data.features=[2020]", "trainer.max_epochs=1")
    )
    assert (summary["feature_names"], summary["target_names"]) == (["2020"], ["y"])


def test_a_csv_trains_with_its_names_everywhere(make_cfg, tmp_path, monkeypatch):
    write(tmp_path, GOOD, "yields.csv")
    monkeypatch.chdir(tmp_path)  # a relative path is taken from where the command runs
    cfg = make_cfg("data=csv", "data.path=yields.csv", "data.targets=[apples]", "trainer.max_epochs=3")
    summary = train(cfg)
    assert summary["status"] == "ok" and summary["data"] == "csv"
    assert summary["feature_names"] == ["temp", "rainfall", "humidity"] and summary["target_names"] == ["apples"]
    assert torch.tensor(summary["weights"]).shape == (1, 3)


@pytest.mark.slow
def test_a_bad_csv_stops_the_command_with_one_line_and_writes_nothing(tmp_path):
    write(tmp_path, "temp,apples\n73,56\n91,lots\n", "bad.csv")
    result = run_cli("data=csv", "data.path=bad.csv", "data.targets=[apples]", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"Error: {tmp_path / 'bad.csv'}, line 3, column 'apples': 'lots' is not a number.")
    assert list(tmp_path.glob("outputs/runs/*")) == []
    missing = run_cli("data=csv", "data.targets=[apples]", cwd=tmp_path)
    assert missing.returncode == 2 and "data.path must be given" in missing.stderr


@pytest.mark.parametrize(
    "text",
    [
        "",
        "temp,apples\n",
        "temp,apples\n73,x\n",
        "temp;apples\n1;2\n",
        "temp,apples\n73,56,\n91,81,\n",
        b"temp,apples\n\xff,1\n",
    ],
)
def test_a_bad_file_stops_training_before_anything_is_written(make_cfg, tmp_path, monkeypatch, text):
    write(tmp_path, text, "bad.csv")
    monkeypatch.chdir(tmp_path)
    cfg = make_cfg("data=csv", "data.path=bad.csv", "data.targets=[apples]")
    with pytest.raises(UserError, match="bad.csv"):
        train(cfg)
    assert not Path(cfg.output_dir).exists()
