"""The plain PyTorch loops the framework is measured against, written as well as a notebook would.

`python bench/plain.py sweep` runs the 9-job learning-rate x epochs grid of `make bench` as
sequential loops in one process.
"""

import sys
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def big_data_epochs(
    features: torch.Tensor, targets: torch.Tensor, batch_size: int, epochs: int, lr: float, seed: int = 0
) -> float:
    """Seconds for `epochs` epochs of shuffled mini-batch SGD done well: a seeded randperm per epoch
    gathers the rows into a reused buffer, then slices of it go through forward, backward and step."""
    device = features.device
    model = nn.Linear(features.shape[1], targets.shape[1]).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    generator = torch.Generator(device=device).manual_seed(seed)
    shuffled_x, shuffled_y = torch.empty_like(features), torch.empty_like(targets)
    _sync(device)
    started = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(features), generator=generator, device=device)
        torch.index_select(features, 0, order, out=shuffled_x)
        torch.index_select(targets, 0, order, out=shuffled_y)
        for start in range(0, len(features), batch_size):
            loss = F.mse_loss(model(shuffled_x[start : start + batch_size]), shuffled_y[start : start + batch_size])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    _sync(device)
    return time.perf_counter() - started


def streaming_pass(features: torch.Tensor, targets: torch.Tensor) -> float:
    """Seconds to read the data once (`X.sum()`): no training loop can go through it faster."""
    _sync(features.device)
    started = time.perf_counter()
    features.sum()
    targets.sum()
    _sync(features.device)
    return time.perf_counter() - started


def tutorial_loop(
    features: torch.Tensor, targets: torch.Tensor, batch_size: int, epochs: int, lr: float
) -> tuple[float, int]:
    """Seconds and optimizer steps of tutorial 002's loop: DataLoader(TensorDataset), nn.Linear,
    F.mse_loss, SGD."""
    loader = DataLoader(TensorDataset(features, targets), batch_size=batch_size, shuffle=True)
    model = nn.Linear(features.shape[1], targets.shape[1])
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    steps, started = 0, time.perf_counter()
    for _ in range(epochs):
        for xb, yb in loader:
            loss = F.mse_loss(model(xb), yb)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            steps += 1
    return time.perf_counter() - started, steps


def full_batch_loop(features: torch.Tensor, targets: torch.Tensor, epochs: int, lr: float) -> float:
    """The final loss of full-batch gradient descent, as train.py's default configuration does it."""
    model = nn.Linear(features.shape[1], targets.shape[1])
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(epochs):
        loss = F.mse_loss(model(features), targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return F.mse_loss(model(features), targets).item()


def lightning_epoch_floor(epochs: int) -> float:
    """Seconds per epoch that Lightning's fit loop takes by itself: one batch an epoch, a
    training_step that does nothing, no logger, no callbacks. No Lightning run can go faster."""
    import logging

    import lightning.pytorch as pl

    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)

    class Idle(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.automatic_optimization = False
            self.weight = nn.Parameter(torch.zeros(1))

        def training_step(self, batch, batch_idx) -> None:
            pass

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    trainer = pl.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
    )
    started = time.perf_counter()
    trainer.fit(Idle(), train_dataloaders=[[0]])
    return (time.perf_counter() - started) / epochs


SWEEP_LRS = (1e-6, 1e-5, 1e-4)
SWEEP_EPOCHS = (50, 100, 200)

if __name__ == "__main__" and sys.argv[1:] == ["sweep"]:
    from experiments.tables import builtin_table

    crops = builtin_table("crops")
    for lr in SWEEP_LRS:
        for epochs in SWEEP_EPOCHS:
            torch.manual_seed(42)
            print(f"lr={lr:g} epochs={epochs}: loss {full_batch_loop(crops.features, crops.targets, epochs, lr):.6g}")
