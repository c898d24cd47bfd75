"""`make bench` is not run by CI: these run its in-process measurements on tiny sizes, so that a change
that breaks the benchmark (or the plain loops it compares against) fails here instead."""

import math
import sys

import pytest

from helpers import REPO

sys.path.insert(0, str(REPO / "bench"))
import bench


@pytest.fixture
def tiny_sizes(monkeypatch):
    monkeypatch.setattr(bench, "REPEATS", 2)
    monkeypatch.setattr(bench, "BIG", {**bench.BIG, "n": 3000, "num_features": 4, "num_targets": 2, "batch_size": 512})
    monkeypatch.setattr(bench, "SMALL", {**bench.SMALL, "epochs": 3, "repeats": 1})


def test_big_and_small_data_are_measured_against_their_plain_loops(tiny_sizes, tmp_path):
    results = {"big data, CPU": bench.big_data(tmp_path, "cpu"), "small data": bench.small_data(tmp_path)}
    for result in results.values():
        figures = [value for value in result.values() if isinstance(value, dict)]
        assert figures and all(0 < figure["min"] <= figure["median"] <= figure["max"] < math.inf for figure in figures)
        assert "ratio" in {key for key, value in result.items() if isinstance(value, dict)}
    table = bench.table({"benchmarks": results})
    assert "| big data, CPU |" in table and "plain loop" in table and "tutorial loop" in table
