import pytest
import torch

from experiments.optim import GradientDescent


def test_gradient_descent_is_the_tutorials_update():
    w = torch.tensor([[1.0, -2.0]], requires_grad=True)
    (w.sum() * 3).backward()  # gradient 3 everywhere
    GradientDescent([w], lr=0.1).step()
    assert torch.allclose(w.detach(), torch.tensor([[0.7, -2.3]]))
    assert torch.equal(w.grad, torch.zeros_like(w))  # and the gradient is reset, as w.grad.zero_()


@pytest.mark.parametrize("seed_of", [[0, 0, 0], [0, 0, 1, 1], [0, 1, 1]], ids=["one batch", "two seeds", "uneven"])
def test_each_members_gradient_and_loss_are_those_of_its_own_model(seed_of):
    from experiments.members import MembersModule

    torch.manual_seed(0)
    weight, bias = torch.randn(len(seed_of), 2, 3), torch.randn(len(seed_of), 2)
    module = MembersModule(weight.clone(), bias.clone(), "torch.optim.SGD", {"lr": [0.1] * len(seed_of)}, seed_of)
    batches = tuple((torch.randn(5, 3), torch.randn(5, 2)) for _ in range(max(seed_of) + 1))
    weight_grad, bias_grad, losses = module._gradients(batches)
    for member, seed in enumerate(seed_of):
        w, b = weight[member].clone().requires_grad_(), bias[member].clone().requires_grad_()
        x, y = batches[seed]
        loss = torch.nn.functional.mse_loss(x @ w.T + b, y)
        loss.backward()
        torch.testing.assert_close(weight_grad[member], w.grad)
        torch.testing.assert_close(bias_grad[member], b.grad)
        torch.testing.assert_close(losses[member], loss.detach())
