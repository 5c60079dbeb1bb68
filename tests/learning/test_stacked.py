"""The stacked linear layer: the same values and gradients as nn.Linear under vmap, weight gradients in the
weight's own layout, and a training template that swaps only plain nn.Linear layers; plain MLPs scored on shared
inputs as a few matmuls over all devices (the bfloat16 evaluation's path); their training gradients without
autograd."""
from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from fieldlearn.learning.config import ModelConfig
from fieldlearn.learning.models import ModelField
from fieldlearn.learning.stacked import (StackedLinear, plain_mlp_gradients, plain_mlp_layers,
                                        shared_input_logits, training_template)


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


class Doubled(nn.Sequential):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * super().forward(x)


def test_plain_mlp_layers_are_found_only_in_a_sequential_of_plain_linear_and_relu():
    mlp = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert [k for k, _ in plain_mlp_layers(mlp)] == ["0", "1", "2"]
    # the model a scenario's `learning.model` builds: a subclass of nn.Sequential that keeps its forward
    built = ModelConfig(hidden=(5, 4)).build(6, 3)
    assert type(built) is not nn.Sequential and [k for k, _ in plain_mlp_layers(built)] == ["0", "1", "2", "3", "4"]
    for other in (_net(), nn.Sequential(nn.ReLU(), nn.Linear(3, 2)), nn.Sequential(nn.Linear(3, 2), nn.Tanh()),
                  nn.Sequential(Scaled(3, 2)), nn.Linear(3, 2), nn.Sequential(),
                  Doubled(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))):
        assert plain_mlp_layers(other) is None
    # a forward hook (on a layer, on the whole model, or on every module) is run only by calling the module
    hooked = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    handle = hooked[2].register_forward_hook(lambda module, args, out: 2 * out)
    assert plain_mlp_layers(hooked) is None
    handle.remove()
    handle = hooked.register_forward_pre_hook(lambda module, args: (args[0] + 1,))
    assert plain_mlp_layers(hooked) is None
    handle.remove()
    handle = torch.nn.modules.module.register_module_forward_hook(lambda module, args, out: out)
    try:
        assert plain_mlp_layers(hooked) is None
    finally:
        handle.remove()
    assert plain_mlp_layers(hooked) is not None


def _mlp3(bias: bool) -> nn.Module:
    return nn.Sequential(nn.Linear(6, 8, bias=bias), nn.ReLU(), nn.Linear(8, 5, bias=bias), nn.ReLU(),
                         nn.Linear(5, 3, bias=bias))


def test_shared_input_logits_equal_each_devices_mlp():
    for bias in (True, False):
        field = ModelField.from_factory(lambda: _mlp3(bias), 7, seed=2)
        x = torch.randn(11, 6, generator=torch.Generator().manual_seed(1))
        out = shared_input_logits(plain_mlp_layers(field.template), field.params, x)
        assert out.shape == (7, 11, 3)
        for i in range(7):
            torch.testing.assert_close(out[i], field.module(i).eval()(x), rtol=1e-5, atol=1e-5)


def test_a_bfloat16_field_scores_shared_inputs_through_the_plain_mlp_path_and_others_through_vmap(monkeypatch):
    import fieldlearn.learning.models as models_module

    calls = []
    real = models_module.shared_input_logits
    monkeypatch.setattr(models_module, "shared_input_logits", lambda *a: calls.append(1) or real(*a))
    mlp = ModelField.from_factory(lambda: _mlp3(True), 9, seed=4, chunk_size=4)
    x = torch.randn(10, 6, generator=torch.Generator().manual_seed(3))
    plain = torch.stack([mlp.module(i).eval()(x) for i in range(9)])
    fast = mlp.to(dtype=torch.bfloat16).forward(x.to(torch.bfloat16), shared=True)
    assert fast.dtype == torch.bfloat16 and len(calls) == 3  # 9 devices, 4 at a time
    torch.testing.assert_close(fast.float(), plain, rtol=0.05, atol=0.05)
    # float32, per-device inputs and other templates keep the vmapped path
    torch.testing.assert_close(mlp.forward(x, shared=True), plain, rtol=1e-5, atol=1e-5)
    mlp.to(dtype=torch.bfloat16).forward(torch.randn(9, 10, 6).to(torch.bfloat16))
    other = ModelField.from_factory(_net, 3, seed=5).to(dtype=torch.bfloat16)
    assert other.forward(torch.randn(4, 6).to(torch.bfloat16), shared=True).shape == (3, 4, 3)
    assert len(calls) == 3


def test_plain_mlp_gradients_equal_each_devices_autograd_of_its_weighted_cross_entropy():
    # oracle: every device's own module, sum_i w_i * ce(x_i, y_i), through autograd; only `wanted` gets a gradient
    torch.manual_seed(3)
    template = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4, bias=False), nn.ReLU(), nn.Linear(4, 3))
    modules = [nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4, bias=False), nn.ReLU(),
                             nn.Linear(4, 3)).double() for _ in range(3)]
    params = {k: torch.stack([dict(m.named_parameters())[k].detach() for m in modules]) for k, _ in
              modules[0].named_parameters()}
    x = torch.randn(3, 7, 6, dtype=torch.float64)
    y = torch.randint(0, 3, (3, 7))
    w = torch.rand(3, 7, dtype=torch.float64)
    for wanted in ({"0.weight", "0.bias", "2.weight", "4.weight", "4.bias"}, {"4.weight"}, {"2.weight"}):
        grads, per_device = plain_mlp_gradients(plain_mlp_layers(template), params, wanted, x, y, w)
        assert set(grads) == wanted
        for i, module in enumerate(modules):
            loss = (nn.functional.cross_entropy(module(x[i]), y[i], reduction="none") * w[i]).sum()
            names = sorted(wanted)
            expected = torch.autograd.grad(loss, [dict(module.named_parameters())[k] for k in names])
            torch.testing.assert_close(per_device[i], loss.detach(), rtol=1e-12, atol=1e-12)
            for k, g in zip(names, expected):
                torch.testing.assert_close(grads[k][i], g, rtol=1e-10, atol=1e-12)
