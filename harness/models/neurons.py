"""Spiking neuron dynamics in torch with SpiNNaker2's discretisation (the "spinnaker2" preset).

Per tick ``t`` and neuron (float32, in this order):

    v = v + I[t]            # IF (alpha = 1); the input enters unscaled (NIR IF with r = 1)
    s = v > theta           # strict
    v = v - theta * s       # reset by subtraction

The spike non-linearity uses a fast-sigmoid surrogate gradient in the backward pass
(Zenke & Ganguli's SuperSpike form, ``1 / (1 + k·|v - theta|)^2``). The reset is detached from
the graph (a common choice; it does not change the forward values).
"""
from __future__ import annotations

import torch


class FastSigmoidSpike(torch.autograd.Function):
    """Heaviside step ``x > 0`` forward, ``1 / (1 + slope·|x|)^2`` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, slope: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.slope = slope
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad / (1.0 + ctx.slope * x.abs()) ** 2, None


def if_sequence(current: torch.Tensor, threshold: float, slope: float = 5.0) -> torch.Tensor:
    """Run IF neurons over time.

    Args:
        current: synaptic input I, shape (batch, time, *neuron_shape), float32.
        threshold: theta (same for every neuron of the population).
        slope: steepness of the surrogate gradient.

    Returns:
        spikes, shape (batch, time, *neuron_shape), values 0./1. (float, differentiable via
        the surrogate).
    """
    v = torch.zeros_like(current[:, 0])
    out = []
    for t in range(current.shape[1]):
        v = v + current[:, t]
        s = FastSigmoidSpike.apply(v - threshold, slope)
        v = v - threshold * s.detach()
        out.append(s)
    return torch.stack(out, 1)


def delay_one_tick(x: torch.Tensor) -> torch.Tensor:
    """Shift a (batch, time, ...) sequence one tick later: out[:, 0] = 0, out[:, t] = x[:, t-1].

    This is the projection latency: spikes emitted in tick t reach the target in tick t+1.
    """
    return torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], 1)
