"""Folders and disks: one writer per folder, files whole or absent, and disk trouble in one line."""

import json
import subprocess
from pathlib import Path

import pytest

from experiments.errors import UserError
from experiments.files import disk_trouble, write_whole
from experiments.folders import claim
from helpers import run_cli


def test_a_file_is_replaced_whole_or_not_at_all(tmp_path):
    path = write_whole(tmp_path / "summary.json", '{"status": "ok"}\n')

    def fails_halfway(file):
        file.write(b'{"status": "interr')
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError) as error:
        write_whole(path, fails_halfway)
    assert error.value.filename == str(path)  # the failed write names the file it was for
    assert json.loads(path.read_text()) == {"status": "ok"}  # the old file, untouched
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temporary file left


def test_disk_trouble_is_one_line_that_names_the_path_and_the_fix():
    line = disk_trouble(OSError(28, "No space left on device", "outputs/runs/x/summary.json"))
    assert line.startswith("cannot write outputs/runs/x/summary.json: No space left on device; the disk is full")
    assert "hydra.run.dir=FOLDER" in line and "\n" not in line


def test_a_folder_that_holds_a_run_is_refused_unless_resumed(tmp_path):
    run = tmp_path / "run"
    for folder in (".hydra", "checkpoints"):
        (run / folder).mkdir(parents=True)
    with pytest.raises(UserError, match=r"already holds a run; continue it with resume=.*run, or give the new run"):
        claim(run, None, "run", "hydra.run.dir")
    claim(run, str(run), "run", "hydra.run.dir")  # resume= continues it
    with pytest.raises(UserError, match="is being written by another command"):
        claim(run, str(run), "run", "hydra.run.dir")  # and while it does, nothing else writes there
    claim(tmp_path / "empty", None, "run", "hydra.run.dir")  # a new or empty folder is the run's


def test_a_sweep_being_written_keeps_its_jobs_folders_to_itself(tmp_path):
    sweep = tmp_path / "sweep"
    claim(sweep, None, "sweep", "hydra.sweep.dir")
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    (sweep / "0_optim.lr=0.1" / ".hydra").mkdir(parents=True)
    with pytest.raises(UserError, match="sweep is being written by another command"):
        claim(sweep / "0_optim.lr=0.1", str(sweep / "0_optim.lr=0.1"), "run", "hydra.run.dir")


def test_two_sweeps_never_share_a_folder_and_a_run_never_overwrites_one(tmp_path):
    first = run_cli("-m", "optim.lr=1e-5", "trainer.max_epochs=1", "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    written = {path: path.stat().st_mtime_ns for path in (tmp_path / "sweep").rglob("*")}
    second = run_cli("-m", "optim.lr=1e-6", "trainer.max_epochs=1", "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert second.returncode == 2 and "Traceback" not in second.stderr
    assert second.stderr.strip().splitlines() == [
        "Error: sweep already holds a sweep; continue it with resume=sweep, or give the new sweep a folder of "
        "its own (hydra.sweep.dir=FOLDER, or leave hydra.sweep.dir unset for a new one)."
    ]
    run = run_cli(f"hydra.run.dir='{tmp_path / 'sweep' / '0'}'", cwd=tmp_path)
    assert run.returncode == 2 and "already holds a run" in run.stderr
    assert {path: path.stat().st_mtime_ns for path in (tmp_path / "sweep").rglob("*")} == written


def test_outputs_being_a_file_is_one_line(tmp_path):
    (tmp_path / "outputs").write_text("not a folder")
    for args in ((), ("-m", "optim.lr=1e-5,1e-6")):
        result = run_cli(*args, "trainer.max_epochs=1", cwd=tmp_path)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("Error: cannot write outputs/") and "a file stands where a folder should be" in line


@pytest.fixture
def small_disk(tmp_path):
    """A 400 KiB file system of its own, where this machine lets the tests mount one (as root)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small file system here (needs root)")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


def test_a_sweep_that_fills_the_disk_stops_and_says_so(small_disk, tmp_path):
    lrs = ",".join(f"{i}e-6" for i in range(1, 13))
    result = run_cli("-m", f"optim.lr={lrs}", "trainer.max_epochs=100", f"hydra.sweep.dir={small_disk}/s", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "Error: cannot write" in result.stderr and "No space left on device; the disk is full" in result.stderr
    for path in small_disk.rglob("*"):  # what was written is whole: no empty or temporary file
        assert ".partial" not in path.name and (path.is_dir() or path.stat().st_size > 0), path
    for path in small_disk.rglob("summary.json"):
        assert json.loads(path.read_text())["status"] == "ok"


def test_a_read_only_folder_is_one_line(small_disk, tmp_path):
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    result = run_cli(f"hydra.run.dir={small_disk}/run", "trainer.max_epochs=1", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line == (
        f"Error: cannot write {small_disk}/run: Read-only file system; the file system is read-only; write "
        f"elsewhere (hydra.run.dir=FOLDER for a run, hydra.sweep.dir=FOLDER for a sweep)."
    )
    assert not list(Path(small_disk).iterdir())
