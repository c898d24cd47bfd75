"""Fixtures; the helpers tests share are in helpers.py."""

import signal

import pytest
from omegaconf import DictConfig

from experiments import stopping
from experiments.config import compose_run


@pytest.fixture(autouse=True)
def signals_as_they_were():
    """A test that stops a run leaves the process as it found it: signal handlers, and no signal
    remembered (Lightning also leaves Ctrl-C ignored after its shutdown)."""
    handlers = {signum: signal.getsignal(signum) for signum in stopping.SIGNALS}
    yield
    stopping.reset()
    stopping.training_ended()
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


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
