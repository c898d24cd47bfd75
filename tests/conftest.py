"""Fixtures; the helpers tests share are in helpers.py."""

import pytest
from omegaconf import DictConfig

from experiments.config import compose_run


@pytest.fixture
def make_cfg(tmp_path):
    """Compose the real config with overrides, as `python train.py` would, pinned to the CPU, writing
    to a fresh folder under tmp_path."""
    count = 0

    def make(*overrides: str) -> DictConfig:
        nonlocal count
        count += 1
        return compose_run(["accelerator=cpu", *overrides], tmp_path / f"run{count}")

    return make
