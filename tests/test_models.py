import torch
import torch.nn.functional as F
from torch import nn

from experiments.models import ScratchLinear
from experiments.tables import builtin_table


def test_scratch_model_equals_nn_linear_given_the_same_weights():
    linear = nn.Linear(3, 2)
    scratch = ScratchLinear(3, 2)
    scratch.load_state_dict(linear.state_dict())
    x = builtin_table("crops").features
    assert torch.allclose(scratch(x), linear(x))


def test_scratch_model_is_the_tutorials_randn_draws():
    torch.manual_seed(0)
    w, b = torch.randn(2, 3), torch.randn(2)
    torch.manual_seed(0)
    model = ScratchLinear(3, 2)
    assert torch.equal(model.weight, w) and torch.equal(model.bias, b)
    assert torch.equal(ScratchLinear(1, 1, bias_init="zeros").bias, torch.zeros(1))


def test_autograd_gradient_equals_the_analytic_gradient():
    # Single target: d/dw mean((Xw - y)^2) = 2/n X^T (Xw - y), and with a bias column appended to X
    # the same formula gives the bias gradient.
    table = builtin_table("toy")
    x, y = table.features.double(), table.targets.double()
    model = ScratchLinear(1, 1).double()
    F.mse_loss(model(x), y).backward()
    design = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    params = torch.cat([model.weight.detach()[0], model.bias.detach()]).reshape(2, 1)
    analytic = 2 / len(x) * design.T @ (design @ params - y)
    assert torch.allclose(model.weight.grad[0], analytic[:1, 0])
    assert torch.allclose(model.bias.grad, analytic[1:, 0])


def test_autograd_gradient_equals_the_analytic_gradient_for_several_targets():
    # F.mse_loss averages over all n * t elements, so each target's gradient carries 1/t as well.
    table = builtin_table("crops")
    x, y = table.features.double(), table.targets.double()
    model = nn.Linear(3, 2).double()
    F.mse_loss(model(x), y).backward()
    residual = model(x).detach() - y
    n, t = y.shape
    assert torch.allclose(model.weight.grad, 2 / (n * t) * residual.T @ x)
    assert torch.allclose(model.bias.grad, 2 / (n * t) * residual.sum(0))
