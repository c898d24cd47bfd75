import numpy as np
import torch

from experiments.datasets import builtin
from experiments.reference import least_squares, max_stable_lr


def test_hand_checkable_line():
    weights, bias, loss = least_squares(torch.tensor([[1.0], [2.0]]), torch.tensor([[1.0], [2.0]]))
    assert torch.allclose(weights, torch.tensor([[1.0]], dtype=torch.float64))
    assert abs(bias.item()) < 1e-12 and loss < 1e-20


def test_optimum_matches_the_normal_equations_solved_independently():
    table = builtin("crops")
    x = np.c_[table.features.numpy().astype(np.float64), np.ones(15)]
    y = table.targets.numpy().astype(np.float64)
    solution = np.linalg.solve(x.T @ x, x.T @ y)
    weights, bias, loss = least_squares(table.features, table.targets)
    assert np.allclose(weights.numpy(), solution[:-1].T, rtol=1e-6)
    assert np.allclose(bias.numpy(), solution[-1], rtol=1e-6)
    assert np.isclose(loss, np.mean((x @ solution - y) ** 2), rtol=1e-9)


def test_gradient_descent_converges_just_below_the_stable_learning_rate_and_diverges_above():
    table = builtin("toy")
    x, y = table.features.double(), table.targets.double()
    limit = max_stable_lr(table.features, table.targets)

    def final_loss(lr):
        w, b = torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
        for _ in range(3000):
            residual = x @ w.T + b - y
            w -= lr * 2 / len(x) * residual.T @ x
            b -= lr * 2 / len(x) * residual.sum(0)
        return torch.mean((x @ w.T + b - y) ** 2).item()

    assert final_loss(0.95 * limit) < 1.0
    assert not final_loss(1.05 * limit) < 1e6
