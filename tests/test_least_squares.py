import numpy as np
import pytest
import torch

from experiments import least_squares as least_squares_module
from experiments.least_squares import QRFactor, least_squares
from experiments.tables import Table, builtin_table


def test_hand_checkable_line():
    optimum = least_squares(QRFactor(torch.tensor([[1.0], [2.0]]), torch.tensor([[1.0], [2.0]])))
    assert torch.allclose(optimum.weights, torch.tensor([[1.0]], dtype=torch.float64))
    assert abs(optimum.bias.item()) < 1e-12 and optimum.loss < 1e-20


def test_optimum_matches_the_normal_equations_solved_independently():
    table = builtin_table("crops")
    x = np.c_[table.features.numpy().astype(np.float64), np.ones(15)]
    y = table.targets.numpy().astype(np.float64)
    solution = np.linalg.solve(x.T @ x, x.T @ y)
    optimum = least_squares(QRFactor(table.features, table.targets))
    assert np.allclose(optimum.weights.numpy(), solution[:-1].T, rtol=1e-6)
    assert np.allclose(optimum.bias.numpy(), solution[-1], rtol=1e-6)
    assert np.isclose(optimum.loss, np.mean((x @ solution - y) ** 2), rtol=1e-9)
    assert np.isclose(optimum.condition, np.linalg.cond(x), rtol=1e-6)


def test_blockwise_pass_gives_the_one_pass_answer_on_many_rows(monkeypatch):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 4, generator=generator, dtype=torch.float64) * torch.tensor([1.0, 10.0, 0.1, 3.0]) + 5
    y = x @ torch.randn(4, 2, generator=generator, dtype=torch.float64) + torch.randn(
        1000, 2, generator=generator, dtype=torch.float64
    )
    whole = least_squares(QRFactor(x, y))
    monkeypatch.setattr(least_squares_module, "BLOCK_ROWS", 64)  # 16 blocks
    blocked = least_squares(QRFactor(x, y))
    design = torch.cat([x, torch.ones(1000, 1, dtype=torch.float64)], 1)
    solution = torch.linalg.lstsq(design, y).solution
    for optimum in (whole, blocked):
        assert torch.allclose(optimum.weights, solution[:-1].T, rtol=1e-9)
        assert optimum.loss == pytest.approx(torch.mean((design @ solution - y) ** 2).item(), rel=1e-9)
        assert optimum.max_stable_lr == pytest.approx(blocked.max_stable_lr, rel=1e-9)


def test_collinear_features_get_the_minimum_norm_optimum():
    x = torch.tensor([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]])  # the second column is twice the first
    optimum = least_squares(QRFactor(x, 5 * x[:, :1]))
    assert optimum.loss < 1e-20 and optimum.condition > 1e12
    assert torch.allclose(optimum.weights, torch.tensor([[1.0, 2.0]], dtype=torch.float64), atol=1e-9)


def test_gradient_descent_converges_just_below_the_stable_learning_rate_and_diverges_above():
    table = builtin_table("toy")
    x, y = table.features.double(), table.targets.double()
    limit = least_squares(QRFactor(table.features, table.targets)).max_stable_lr

    def final_loss(lr):
        w, b = torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
        for _ in range(3000):
            residual = x @ w.T + b - y
            w -= lr * 2 / len(x) * residual.T @ x
            b -= lr * 2 / len(x) * residual.sum(0)
        return torch.mean((x @ w.T + b - y) ** 2).item()

    assert final_loss(0.95 * limit) < 1.0
    assert not final_loss(1.05 * limit) < 1e6


def test_the_loss_of_any_weights_from_the_r_factor_is_the_loss_on_the_data(monkeypatch):
    generator = torch.Generator().manual_seed(1)
    x, y = torch.randn(500, 3, generator=generator), torch.randn(500, 2, generator=generator)
    weights, bias = torch.randn(2, 3, generator=generator), torch.randn(2, generator=generator)
    monkeypatch.setattr(least_squares_module, "BLOCK_ROWS", 128)
    on_the_data = torch.nn.functional.mse_loss(x.double() @ weights.T.double() + bias.double(), y.double()).item()
    assert QRFactor(x, y).loss(weights, bias) == pytest.approx(on_the_data, rel=1e-12)


def test_the_meter_reads_standardized_models_in_the_datas_units_as_they_train():
    from experiments.evaluation import Evaluator
    from experiments.scaling import Scaler

    crops = builtin_table("crops")
    train, val = (
        Table(crops.features[rows], crops.targets[rows], crops.feature_names, crops.target_names)
        for rows in (slice(0, 12), slice(12, 15))
    )
    scaler = Scaler(3, 2).fit(train)
    members_weight, members_bias = torch.randn(3, 2, 3), torch.randn(3, 2)  # three members, as a sweep group trains
    meter = Evaluator(train, val, scaler).meter(members_weight, members_bias)
    for _ in range(2):  # the same meter follows the parameters as they change in place
        members_weight.add_(torch.randn(3, 2, 3))
        all_values, all_losses = meter.read()
        for member in range(3):
            weights, bias = scaler.original_weights(members_weight[member], members_bias[member])
            values, (train_loss, val_loss) = all_values[member], all_losses[member]
            assert values == pytest.approx(torch.cat([weights, bias[:, None]], dim=1).view(-1).tolist(), rel=1e-12)
            for table, loss in ((train, train_loss), (val, val_loss)):
                predictions = table.features.double() @ weights.T + bias
                assert loss == pytest.approx(torch.mean((predictions - table.targets.double()) ** 2).item(), rel=1e-9)
