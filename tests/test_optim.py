import torch

from experiments.optim import GradientDescent


def test_gradient_descent_is_the_tutorials_update():
    w = torch.tensor([[1.0, -2.0]], requires_grad=True)
    (w.sum() * 3).backward()  # gradient 3 everywhere
    GradientDescent([w], lr=0.1).step()
    assert torch.allclose(w.detach(), torch.tensor([[0.7, -2.3]]))
    assert torch.equal(w.grad, torch.zeros_like(w))  # and the gradient is reset, as w.grad.zero_()
