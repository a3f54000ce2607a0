"""Helpers shared by the tensorized-layer tests."""

import io

import torch


def candidate_programs(layer, shape, cached=False):
    """Every forward path the layer could choose for an input of ``shape``."""
    return [c[0] for c in type(layer)._candidates(layer.spec, tuple(shape), cached)]


def run_with(layer, x, prog):
    """Run ``layer`` on ``x`` through a given forward path."""
    layer._programs[x.shape] = prog
    layer._programs_ng[x.shape] = prog
    try:
        return layer(x)
    finally:
        layer.clear_plans()


def rel_err(a, b):
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm())


def gradcheck_layer(layer, x):
    """Finite-difference check of the gradients w.r.t. the input and every parameter."""
    names, params = zip(*layer.named_parameters())

    def f(inp, *ps):
        return torch.func.functional_call(layer, dict(zip(names, ps)), (inp,))

    args = (x.detach().requires_grad_(),) + tuple(p.detach().requires_grad_() for p in params)
    return torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


def state_dict_round_trip(layer, fresh):
    """Save ``layer``'s state_dict without pickle-only objects and load it into ``fresh``."""
    buf = io.BytesIO()
    torch.save(layer.state_dict(), buf)
    buf.seek(0)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    return fresh
