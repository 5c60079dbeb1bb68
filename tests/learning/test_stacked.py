"""The stacked linear layer: the same values and gradients as nn.Linear under vmap, weight gradients in the
weight's own layout, and a training template that swaps only plain nn.Linear layers."""
from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from fieldlearn.learning.stacked import StackedLinear, training_template


class Scaled(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * super().forward(x)


def _net(bias: bool = True) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5, bias=bias), nn.Tanh(), Scaled(5, 4), nn.Sequential(nn.Linear(4, 3)))


def test_training_template_swaps_plain_linear_layers_only_and_is_kept():
    net = _net()
    swapped = training_template(net)
    kinds = [type(m) for m in swapped.modules()]
    assert kinds.count(StackedLinear) == 2 and kinds.count(Scaled) == 1
    assert [type(m) for m in net.modules()].count(StackedLinear) == 0  # the original is untouched
    assert [k for k, _ in swapped.named_parameters()] == [k for k, _ in net.named_parameters()]
    assert training_template(net) is swapped


def _grads(template: nn.Module, params: dict, x: torch.Tensor, x_dim: int | None) -> tuple:
    forward = torch.vmap(lambda p, inputs: functional_call(template, p, (inputs,)), in_dims=(0, x_dim))
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    xs = x.detach().clone().requires_grad_(True)
    out = forward(leaves, xs)
    loss = (out * torch.arange(out.numel(), dtype=out.dtype).view_as(out).cos()).sum()
    grads = torch.autograd.grad(loss, [*leaves.values(), xs])
    return out.detach(), dict(zip([*leaves, "x"], grads))


def _stacked_params(net: nn.Module, m: int) -> dict:
    g = torch.Generator().manual_seed(1)
    return {k: torch.randn((m, *v.shape), generator=g, dtype=torch.float64) for k, v in net.named_parameters()}


def test_vmapped_values_and_gradients_equal_nn_linear_and_keep_the_weight_layout():
    for bias in (True, False):
        net = _net(bias).double()
        params = _stacked_params(net, 7)
        for x, x_dim in ((torch.randn(7, 9, 6, dtype=torch.float64), 0),  # a batch per device
                         (torch.randn(7, 2, 3, 6, dtype=torch.float64), 0),  # more leading dimensions
                         (torch.randn(9, 6, dtype=torch.float64), None)):  # the same inputs for all devices
            want_out, want = _grads(net, params, x, x_dim)
            got_out, got = _grads(training_template(net), params, x, x_dim)
            torch.testing.assert_close(got_out, want_out, rtol=1e-12, atol=1e-12)
            for k in want:
                torch.testing.assert_close(got[k], want[k], rtol=1e-12, atol=1e-12)
            assert got["0.weight"].is_contiguous() and got["3.0.weight"].is_contiguous()


def test_a_weight_shared_by_all_devices_gets_the_sum_of_their_gradients():
    layer = StackedLinear(4, 3)
    w = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    x = torch.randn(5, 2, 4, dtype=torch.float64)
    out = torch.vmap(lambda xi: functional_call(layer, {"weight": w, "bias": b}, (xi,)))(x)
    gw, gb = torch.autograd.grad(out.sum(), [w, b])
    torch.testing.assert_close(out, x @ w.detach().t() + b.detach())
    torch.testing.assert_close(gw, torch.ones(5, 2, 3, dtype=torch.float64).flatten(0, 1).t() @ x.flatten(0, 1))
    torch.testing.assert_close(gb, torch.full((3,), 10.0, dtype=torch.float64))


def test_outside_vmap_it_is_nn_linear_with_its_gradients():
    layer = StackedLinear(4, 3).double()
    x = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda inp, w, b: functional_call(layer, {"weight": w, "bias": b}, (inp,)),
                                    (x, layer.weight.detach().clone().requires_grad_(True),
                                     layer.bias.detach().clone().requires_grad_(True)))
