"""Bounded, bad and hostile input: only regular files of a size memory can hold are read as data, and
compare.py reads every run folder as data, listing a run whose files are damaged with one warning."""

import csv
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from experiments import comparison as compare
from experiments import csv_table
from experiments.csv_table import read_csv, read_features
from experiments.errors import UserError
from experiments.runs import UNREADABLE_OVERRIDES, read_overrides, read_summary
from helpers import REPO, make_run, summary

GOOD = "temp,rainfall,humidity,apples\n73,67,43,56\n91,88,64,81\n87,134,58,119\n"


def finishes(call, seconds: float = 10.0):
    """Run `call` in a thread and return what it raised, failing if it has not finished in `seconds`
    (a reader blocked on a FIFO would otherwise hang the test suite)."""
    outcome: list[BaseException | None] = []

    def target():
        try:
            call()
            outcome.append(None)
        except BaseException as error:  # noqa: BLE001 - handed to the test
            outcome.append(error)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"still running after {seconds} s: it waits on its input"
    return outcome[0]


# Reading CSV files: regular files only, and only as large as memory allows.


@pytest.mark.parametrize(
    "read", [lambda p: read_csv(p, targets=["apples"]), lambda p: read_features(p, ["temp"])], ids=["data", "predict"]
)
def test_dev_zero_is_refused_at_once(read):
    started = time.monotonic()
    with pytest.raises(UserError, match=r"/dev/zero is a character device, .*give a regular CSV file\.") as error:
        read(Path("/dev/zero"))
    assert time.monotonic() - started < 2
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "read,key",
    [(lambda p: read_csv(p, targets=["apples"]), "data.path"), (lambda p: read_features(p, ["temp"]), "input_csv")],
    ids=["data", "predict"],
)
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path, read, key):
    fifo = tmp_path / "data.csv"
    os.mkfifo(fifo)  # nobody writes to it: opening it to read would wait forever
    error = finishes(lambda: read(fifo))
    assert isinstance(error, UserError)
    assert (
        str(error)
        == f"{key}: {fifo} is a named pipe (FIFO), not a file that can be read to its end; give a regular CSV file."
    )


def test_a_symlink_to_a_device_is_refused_too(tmp_path):
    link = tmp_path / "data.csv"
    link.symlink_to("/dev/zero")
    with pytest.raises(UserError, match="is a character device"):
        read_csv(link, targets=["apples"])


def test_a_file_too_large_for_the_memory_available_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = tmp_path / "big.csv"
    path.write_text(GOOD)
    size = path.stat().st_size
    monkeypatch.setattr(csv_table, "available_memory", lambda: 1000)
    opened = []
    monkeypatch.setattr(csv_table.os, "open", lambda *args, **kwargs: opened.append(args) or 1 / 0)
    for read in (lambda: read_csv(path, targets=["apples"]), lambda: read_features(path, ["temp"])):
        with pytest.raises(UserError) as error:
            read()
        message = str(error.value)
        assert f"{path} is {size} bytes on disk" in message
        assert f"up to {csv_table.MEMORY_PER_BYTE}x that ({size * csv_table.MEMORY_PER_BYTE / 1024:.1f} KiB)" in message
        assert "1000 bytes of memory available" in message and "Use a smaller CSV file" in message
    assert opened == []  # refused before the file was opened


def test_a_file_memory_can_hold_is_read_as_before(tmp_path, monkeypatch):
    path = tmp_path / "data.csv"
    path.write_text(GOOD)
    monkeypatch.setattr(csv_table, "available_memory", lambda: path.stat().st_size * csv_table.MEMORY_PER_BYTE)
    table = read_csv(path, targets=["apples"])
    assert table.features.tolist() == [[73, 67, 43], [91, 88, 64], [87, 134, 58]]
    assert table.targets.tolist() == [[56], [81], [119]]
    assert read_features(path, ["humidity", "temp"]).tolist() == [[43, 73], [64, 91], [58, 87]]


def test_the_memory_available_is_known_on_linux():
    if not Path("/proc/meminfo").is_file():
        pytest.skip("no /proc/meminfo")
    available = csv_table.available_memory()
    assert available is not None and available > 0


def test_lines_of_any_ending_and_length_are_split_as_str_splitlines_splits_them():
    text = "a,b\r\nc\rd\n\ne\x0bf\u2028" + "x" * 200_000 + "\r\n" + "last"
    assert list(csv_table._split_lines(text, block=7)) == text.splitlines()
    assert list(csv_table._split_lines("a\r", block=1)) == ["a"]
    assert list(csv_table._split_lines("a\r\nb", block=2)) == ["a", "b"]  # "\r" and "\n" in different blocks


def test_a_cell_longer_than_the_csv_module_allows_is_one_line(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("temp,apples\n1,2\n" + "9" * 200_000 + ",3\n")
    with pytest.raises(UserError, match=r"line 3: field larger than field limit"):
        read_csv(path, targets=["apples"])


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_a_file_that_cannot_be_read_is_one_line(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text(GOOD)
    path.chmod(0)
    with pytest.raises(UserError, match=f"data.path: cannot read {path}: Permission denied"):
        read_csv(path, targets=["apples"])


@pytest.mark.slow
def test_training_on_dev_zero_stops_at_once_with_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "data=csv", "data.path=/dev/zero", "data.targets=[y]"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Error: data.path: /dev/zero is a character device, not a file that can be read to its end; "
        "give a regular CSV file."
    ]
    assert "Traceback" not in result.stdout + result.stderr
    assert list(tmp_path.glob("outputs/runs/*")) == []


# Reading run folders: a damaged summary.json or .hydra/overrides.yaml is one warning, never a traceback.


BAD_SUMMARIES = {
    "invalid JSON": ('{"status": "ok", ', "Expecting property name"),
    "a list": ("[1, 2, 3]", "it holds a list, not a JSON object"),
    "a loss that is text": (summary(final_loss="abc"), "\"final_loss\" is 'abc', not a finite number"),
    "a status that is a number": (summary(status=5), '"status" is 5, not one of ok, interrupted, diverged, failed'),
    "a status that is a list": ({"status": ["ok"]}, '"status" is a list'),
    "an unknown status": (summary(status="great"), "\"status\" is 'great'"),
    "an optimum that is text": (summary(optimal_loss="x"), "\"optimal_loss\" is 'x'"),
    "an infinite optimum": ('{"status": "ok", "optimal_loss": Infinity}', '"optimal_loss" is inf'),
    "a whole number too large": ('{"status": "ok", "final_loss": 1' + "0" * 400 + "}", "a number of over 40 digits"),
    "epochs that are text": (summary(epochs="5"), "\"epochs\" is '5', not a whole number"),
    "an error that is a list": (summary(status="failed", error=["x"]), '"error" is a list, not text'),
    "an empty file": ("", "the file is empty"),
    "binary garbage": (b"\xff\xfe\x00garbage", "not UTF-8 text (byte 0xff at offset 0)"),
    "nested too deeply": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
}


@pytest.mark.parametrize("content,reason", BAD_SUMMARIES.values(), ids=BAD_SUMMARIES.keys())
def test_a_damaged_summary_is_listed_as_failed_with_one_warning(tmp_path, capsys, content, reason):
    run = make_run(tmp_path / "run", content=content)
    read, modified = read_summary(run)
    assert read["status"] == "failed" and read["error"] == f"unreadable summary.json: {read['error'][25:]}"
    assert reason in read["error"] and modified > 0
    warning = capsys.readouterr().err
    assert (
        warning
        == f"Warning: {run / 'summary.json'} is unreadable ({read['error'][25:]}); its run is listed as failed.\n"
    )


def test_a_summary_that_is_a_fifo_is_not_waited_on(tmp_path, capsys):
    run = make_run(tmp_path / "run")
    (run / "summary.json").unlink()
    os.mkfifo(run / "summary.json")
    error = finishes(lambda: read_summary(run))
    assert error is None
    assert "summary.json is unreadable (not a regular file)" in capsys.readouterr().err


BAD_OVERRIDES = {
    "invalid YAML": ("- a\n- [b\n", "not valid YAML: expected ',' or ']'"),
    "a mapping": ("optim.lr: 0.1\n", "it holds a mapping, not a list of overrides"),
    "text": ("optim.lr\n", "it holds 'optim.lr', not a list of overrides"),
    "numbers": ("- 1\n- 2\n", "it lists 1, not an override such as optim.lr=0.01"),
    "binary garbage": (b"\xff\xfe\x00\x01garbage", "not UTF-8 text (byte 0xff at offset 0)"),
    "a NUL": (b"- a\x00b\n", "unacceptable character #x0000"),
}


@pytest.mark.parametrize("content,reason", BAD_OVERRIDES.values(), ids=BAD_OVERRIDES.keys())
def test_damaged_overrides_are_one_warning_and_a_label_that_says_so(tmp_path, capsys, content, reason):
    run = make_run(tmp_path / "run", overrides=content)
    assert read_overrides(run) == UNREADABLE_OVERRIDES
    warning = capsys.readouterr().err
    path = run / ".hydra" / "overrides.yaml"
    assert warning.startswith(f"Warning: {path} is unreadable ({reason}")
    assert warning.endswith("); its run is listed without its overrides.\n") and warning.count("\n") == 1


def test_overrides_that_name_code_are_read_as_data_and_never_run(tmp_path, capsys):
    victim = tmp_path / "victim.txt"
    run = make_run(
        tmp_path / "run", overrides=f"- !!python/object/apply:os.system ['touch {victim}']\n- optim.lr=0.1\n"
    )
    assert read_overrides(run) == UNREADABLE_OVERRIDES
    assert not victim.exists()
    assert "could not determine a constructor for the tag" in capsys.readouterr().err


def test_good_and_absent_overrides_are_read_as_before(tmp_path, capsys):
    assert read_overrides(make_run(tmp_path / "a", overrides="- optim.lr=0.1\n- seed=3\n")) == "optim.lr=0.1,seed=3"
    assert read_overrides(make_run(tmp_path / "b", overrides="[]\n")) == "defaults"
    assert read_overrides(make_run(tmp_path / "c", overrides="")) == "defaults"
    assert read_overrides(make_run(tmp_path / "d", overrides=None)) == "defaults"
    assert capsys.readouterr().err == ""


@pytest.fixture
def damaged_sweep(tmp_path) -> tuple[Path, list[Path]]:
    """A sweep folder of two good runs and one run with each kind of damaged file."""
    sweep = tmp_path / "sweep"
    make_run(sweep / "0_good", overrides="- optim.lr=1e-05\n", content=summary(final_loss=5.0))
    make_run(sweep / "1_good", overrides="- optim.lr=1e-04\n", content=summary(final_loss=3.0))
    damaged = [
        make_run(sweep / "2_invalid_json", content="{").joinpath("summary.json"),
        make_run(sweep / "3_list", content="[]").joinpath("summary.json"),
        make_run(sweep / "4_wrong_types", content=summary(final_loss="abc", status=5)).joinpath("summary.json"),
        make_run(sweep / "5_empty", content="").joinpath("summary.json"),
        make_run(sweep / "6_invalid_yaml", overrides="- [a\n").joinpath(".hydra", "overrides.yaml"),
        make_run(sweep / "7_mapping", overrides="a: 1\n").joinpath(".hydra", "overrides.yaml"),
        make_run(sweep / "8_binary", overrides=b"\x00\xff\xfe").joinpath(".hydra", "overrides.yaml"),
    ]
    return sweep, damaged


def test_compare_lists_every_run_and_warns_once_for_each_damaged_file(damaged_sweep, tmp_path, capsys):
    sweep, damaged = damaged_sweep
    out = tmp_path / "report"
    assert compare.main([str(sweep), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    warnings = captured.err.splitlines()
    assert len(warnings) == len(damaged)
    for path, warning in zip(damaged, warnings):
        assert warning.startswith(f"Warning: {path.resolve()} is unreadable (")
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert len(rows) == 9 and "9 runs" in captured.out
    assert rows[0]["overrides"] == "optim.lr=1e-04" and rows[0]["best"] == "*" and rows[0]["status"] == "ok"
    by_folder = {Path(row["path"]).name: row for row in rows}
    for name in ("2_invalid_json", "3_list", "4_wrong_types", "5_empty"):
        assert by_folder[name]["status"] == "failed" and by_folder[name]["error"].startswith("unreadable summary.json")
    for name in ("6_invalid_yaml", "7_mapping", "8_binary"):
        assert by_folder[name]["status"] == "ok" and by_folder[name]["overrides"].startswith(UNREADABLE_OVERRIDES)
    assert (out / "loss_curves.png").stat().st_size > 0 and (out / "summary.md").is_file()


def test_compare_answers_an_out_that_is_a_file_in_one_line(damaged_sweep, tmp_path, capsys):
    sweep, _ = damaged_sweep
    (tmp_path / "taken").write_text("")
    assert compare.main([str(sweep), "--out", str(tmp_path / "taken")]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"Error: cannot write the comparison to {tmp_path / 'taken'}: File exists; give --out a folder you can "
        "write to."
    )


@pytest.mark.slow
def test_the_compare_command_survives_damaged_run_folders(damaged_sweep, tmp_path):
    sweep, damaged = damaged_sweep
    result = subprocess.run(
        [sys.executable, str(REPO / "compare.py"), str(sweep), "--out", str(tmp_path / "report")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert [line.split(" is unreadable")[0] for line in result.stderr.splitlines()] == [
        f"Warning: {path.resolve()}" for path in damaged
    ]
    assert (tmp_path / "report" / "loss_curves.png").is_file() and "9 runs" in result.stdout
