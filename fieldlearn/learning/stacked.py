"""Stacked models as batched matmuls. For training, a linear layer whose vmapped backward gives each device's weight
gradient in the weight's own layout, so that the fused optimiser step reads it as it is (no transposing copy) from a
faster matmul, and a plain MLP's gradients computed by those operations directly, without autograd; for scoring a
plain MLP on inputs every device sees, its layers as a few matmuls over all devices."""
from __future__ import annotations

import copy
import weakref

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["plain_mlp_gradients", "plain_mlp_layers", "shared_input_logits", "training_template"]


def stacked_linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """`x @ w^T + b` over stacked devices: x `[m, rows, in]`, w `[m, out, in]`, b `[m, out]` or None."""
    out = torch.bmm(x, w.transpose(1, 2))
    return out if b is None else out.add_(b.unsqueeze(1))


class _StackedLinear(torch.autograd.Function):
    """`stacked_linear` with a backward that gives each device's weight gradient in the weight's own layout."""

    @staticmethod
    def forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        return stacked_linear(x, w, b)

    @staticmethod
    def setup_context(ctx: torch.autograd.function.FunctionCtx, inputs: tuple, output: torch.Tensor) -> None:
        x, w, b = inputs
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple:
        x, w = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        grad_x = torch.bmm(grad, w) if need_x else None
        grad_w = torch.bmm(grad.transpose(1, 2), x) if need_w else None  # [m, out, in]: the weight's layout
        grad_b = grad.sum(1) if ctx.has_bias and need_b else None
        return grad_x, grad_w, grad_b


class _PerDeviceLinear(torch.autograd.Function):
    """`F.linear` for one device; under `torch.vmap` over devices it runs as one `_StackedLinear` on all of them."""

    generate_vmap_rule = False

    @staticmethod
    def forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        return F.linear(x, w, b)

    @staticmethod
    def setup_context(ctx: torch.autograd.function.FunctionCtx, inputs: tuple, output: torch.Tensor) -> None:
        ctx.save_for_backward(*inputs[:2])
        ctx.has_bias = inputs[2] is not None

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple:
        x, w = ctx.saved_tensors
        grad_w = grad.reshape(-1, grad.shape[-1]).t() @ x.reshape(-1, x.shape[-1])
        grad_b = grad.reshape(-1, grad.shape[-1]).sum(0) if ctx.has_bias else None
        return grad @ w, grad_w, grad_b

    @staticmethod
    def vmap(info: object, in_dims: tuple, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> tuple:
        m = info.batch_size

        def stacked(t: torch.Tensor | None, dim: int | None) -> torch.Tensor | None:
            if t is None:
                return None
            return t.movedim(dim, 0) if dim is not None else t.expand(m, *t.shape)

        x, w, b = stacked(x, in_dims[0]), stacked(w, in_dims[1]), stacked(b, in_dims[2])
        rows = x.shape[1:-1]
        out = _StackedLinear.apply(x.reshape(m, -1, x.shape[-1]), w, b)
        return out.view(m, *rows, w.shape[1]), 0


class StackedLinear(nn.Linear):
    """`nn.Linear` (same parameters, same values) computed through `_PerDeviceLinear`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _PerDeviceLinear.apply(x, self.weight, self.bias)


_TEMPLATES: "weakref.WeakKeyDictionary[nn.Module, nn.Module]" = weakref.WeakKeyDictionary()


def training_template(template: nn.Module) -> nn.Module:
    """A copy of `template` (kept per template) whose plain `nn.Linear` layers are `StackedLinear`s; subclasses of
    `nn.Linear` and every other module are left as they are. Parameter names and meaning are unchanged."""
    found = _TEMPLATES.get(template)
    if found is not None:
        return found
    swapped = copy.deepcopy(template)
    for module in swapped.modules():
        for child in module.children():
            if type(child) is nn.Linear:
                child.__class__ = StackedLinear
    _TEMPLATES[template] = swapped
    return swapped


def plain_mlp_layers(template: nn.Module) -> list[tuple[str, nn.Module]] | None:
    """The named layers of a template that is an `nn.Sequential` (or a subclass that keeps its forward, as the MLP
    `ModelConfig` builds) of plain `nn.Linear` and `nn.ReLU` only, with no forward hooks, or None for any other
    template."""
    if not isinstance(template, nn.Sequential) or type(template).forward is not nn.Sequential.forward:
        return None
    if _runs_forward_hooks(template):
        return None  # a hook changes what the module computes: only calling it runs the hook
    layers = list(template.named_children())
    if not layers or type(layers[0][1]) is not nn.Linear:
        return None
    if any(type(m) not in (nn.Linear, nn.ReLU) for _, m in layers):
        return None
    return layers


def _runs_forward_hooks(template: nn.Module) -> bool:
    """Whether calling `template` runs a forward hook: one registered for every module, or on it or a submodule
    (torch keeps them in these dicts and has no public query for them)."""
    every = torch.nn.modules.module
    if every._global_forward_hooks or every._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in template.modules())


def shared_input_logits(layers: list[tuple[str, nn.Module]], params: dict[str, torch.Tensor],
                        x: torch.Tensor) -> torch.Tensor:
    """Every device's plain MLP (`plain_mlp_layers`) on the same inputs `x[batch, in]`, as `[devices, batch, out]`:
    the first layer is one matmul of the inputs by all devices' weight rows (in bfloat16 about 1.3x faster than a
    batched matmul over per-device copies of the inputs), the others are batched matmuls."""
    h = None
    for name, layer in layers:
        if type(layer) is nn.ReLU:
            h = h.relu_()  # h is this function's own intermediate
            continue
        w, b = params[f"{name}.weight"], params.get(f"{name}.bias")
        m, out_features, in_features = w.shape
        if h is None:
            flat = F.linear(x, w.reshape(m * out_features, in_features), None if b is None else b.reshape(-1))
            h = flat.view(x.shape[0], m, out_features).transpose(0, 1)
        else:
            h = stacked_linear(h, w, b)
    return h


def plain_mlp_gradients(layers: list[tuple[str, nn.Module]], params: dict[str, torch.Tensor], wanted: set[str],
                        x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor) -> tuple[dict, torch.Tensor]:
    """Gradients (of the parameters named in `wanted`) and per-device values of the weighted cross-entropy of stacked
    plain MLPs (`plain_mlp_layers`) on per-device batches `x[m, batch, in]`, labels and weights `[m, batch]`: the
    operations that autograd runs for the vmapped `StackedLinear` model and its loss, called directly (no graph, no
    vmap, a fraction of the per-step cost), so the same bits."""
    saved = []
    h = x
    for name, layer in layers:
        if type(layer) is nn.ReLU:
            h = torch.relu(h)
            saved.append((None, h))
        else:
            saved.append((name, h))
            h = stacked_linear(h, params[f"{name}.weight"], params.get(f"{name}.bias"))
    m, batch = y.shape
    log_p = torch.log_softmax(h.reshape(m * batch, -1), 1)
    target = y.reshape(-1, 1)
    per_device = (-log_p.gather(1, target).view(m, batch) * weight).sum(1)
    grad = torch.zeros_like(log_p).scatter_(1, target, -weight.reshape(-1, 1))  # nll_loss's backward
    grad = torch.ops.aten._log_softmax_backward_data(grad, log_p, 1, log_p.dtype).view(m, batch, -1)
    below = [any(f"{n}.{k}" in wanted for n, _ in saved[:i] if n is not None for k in ("weight", "bias"))
             for i in range(len(saved))]  # whether a layer below needs the gradient of this one's input
    grads = {}
    for i in range(len(saved) - 1, -1, -1):
        name, kept = saved[i]
        if name is None:
            grad = torch.ops.aten.threshold_backward(grad, kept, 0)
            continue
        w = params[f"{name}.weight"]
        if f"{name}.weight" in wanted:
            grads[f"{name}.weight"] = torch.bmm(grad.transpose(1, 2), kept)
        if f"{name}.bias" in wanted:
            grads[f"{name}.bias"] = grad.sum(1)
        if not below[i]:
            break
        grad = torch.bmm(grad, w)
    return grads, per_device
