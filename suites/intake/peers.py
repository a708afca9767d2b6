"""Small seeded models in each framework, their own forward pass, and seeded input spikes.

Every model is a small MLP (20 -> 10 -> 5) or a small conv net (2x14x14 -> Conv3x3/s2 -> 4x6x6 ->
pool/flatten -> 5), built with ``torch.manual_seed`` and weights scaled so that the layers spike a
few times per sample. The forward functions run the framework's own modules tick by tick and
return the last layer's spikes as a numpy array of shape (batch, time, 5).
"""
from __future__ import annotations

from typing import Callable, Dict, Tuple

import numpy as np
import pytest

MLP_IN = (20,)
CONV_IN = (2, 14, 14)
BATCH, TICKS = 3, 40


def spikes(shape: Tuple[int, ...], seed: int = 1, batch: int = BATCH, ticks: int = TICKS, p: float = 0.3) -> np.ndarray:
    """Bernoulli(p) input spikes, float32, shape (batch, time, *shape)."""
    rng = np.random.default_rng(seed)
    return (rng.random((batch, ticks, *shape)) < p).astype(np.float32)


def _scale(module, factor: float) -> None:
    import torch

    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("weight") or name.endswith("bias"):
                p.mul_(factor)


# ----------------------------------------------------------------------------- Sinabs
def sinabs_mlp(norm_input: bool = False):
    import sinabs.activation as sa
    import sinabs.layers as sl
    import torch

    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(20, 10), sl.LIFSqueeze(tau_mem=8.0, batch_size=BATCH, norm_input=norm_input,
                                                                   spike_fn=sa.SingleSpike),
                            torch.nn.Linear(10, 5), sl.LIFSqueeze(tau_mem=8.0, batch_size=BATCH, norm_input=norm_input,
                                                                  spike_fn=sa.SingleSpike))
    _scale(m, 12.0 if norm_input else 1.5)
    return m


def sinabs_conv():
    import sinabs.activation as sa
    import sinabs.layers as sl
    import torch

    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, stride=2, bias=False),
                            sl.IAFSqueeze(batch_size=BATCH, spike_fn=sa.SingleSpike),
                            sl.SumPool2d(2), torch.nn.Flatten(), torch.nn.Linear(4 * 3 * 3, 5, bias=False),
                            sl.IAFSqueeze(batch_size=BATCH, spike_fn=sa.SingleSpike))
    _scale(m, 8.0)
    return m


def sinabs_forward(model, x: np.ndarray) -> np.ndarray:
    """Sinabs' squeezed layers take batch-major (batch*time, ...) input."""
    import sinabs
    import torch

    sinabs.reset_states(model)
    with torch.no_grad():
        out = model(torch.from_numpy(x).reshape(-1, *x.shape[2:]))
    if isinstance(out, tuple):  # sinabs.nir.from_nir returns nirtorch's executor: (output, state)
        out = out[0]
    return out.reshape(x.shape[0], x.shape[1], -1).numpy()


# ----------------------------------------------------------------------------- snnTorch
def snntorch_mlp():
    import snntorch as snn
    import torch

    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(20, 10),
                            snn.Leaky(beta=0.9, init_hidden=True, reset_mechanism="zero", reset_delay=False),
                            torch.nn.Linear(10, 5),
                            snn.Leaky(beta=0.8, init_hidden=True, output=True, reset_mechanism="zero", reset_delay=False))
    _scale(m, 1.5)
    return m


def snntorch_default_mlp(reset_mechanism: str = "subtract", reset_delay: bool = True):
    """The MLP with snnTorch's default Leaky (reset by subtraction, reset_delay=True) or the reset given."""
    import snntorch as snn
    import torch

    torch.manual_seed(0)
    kw = dict(init_hidden=True, reset_mechanism=reset_mechanism, reset_delay=reset_delay)
    m = torch.nn.Sequential(torch.nn.Linear(20, 10), snn.Leaky(beta=0.9, **kw),
                            torch.nn.Linear(10, 5), snn.Leaky(beta=0.8, output=True, **kw))
    _scale(m, 1.5)
    return m


def snntorch_conv():
    import snntorch as snn
    import torch

    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, stride=2),
                               snn.Leaky(beta=0.9, init_hidden=True, reset_mechanism="zero", reset_delay=False),
                               torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 5),
                               snn.Leaky(beta=0.9, init_hidden=True, output=True, reset_mechanism="zero",
                                         reset_delay=False))
    _scale(m, 3.0)
    return m


def snntorch_forward(model, x: np.ndarray) -> np.ndarray:
    import torch
    from snntorch import utils

    utils.reset(model)
    out = []
    with torch.no_grad():
        for t in range(x.shape[1]):
            spk, _ = model(torch.from_numpy(x[:, t]))
            out.append(spk.numpy())
    return np.stack(out, axis=1)


# ----------------------------------------------------------------------------- Norse
def norse_mlp():
    import norse.torch as nt
    import torch

    torch.manual_seed(0)
    m = nt.SequentialState(torch.nn.Linear(20, 10), nt.LIFBoxCell(), torch.nn.Linear(10, 5), nt.LIFBoxCell())
    _scale(m, 12.0)
    return m


def norse_conv():
    import norse.torch as nt
    import torch

    torch.manual_seed(0)
    m = nt.SequentialState(torch.nn.Conv2d(2, 4, 3, stride=2), nt.LIFBoxCell(), torch.nn.Flatten(),
                           torch.nn.Linear(4 * 6 * 6, 5), nt.LIFBoxCell())
    _scale(m, 15.0)
    return m


def norse_forward(model, x: np.ndarray) -> np.ndarray:
    import torch

    state = None
    out = []
    with torch.no_grad():
        for t in range(x.shape[1]):
            z, state = model(torch.from_numpy(x[:, t]), state)
            out.append(z.numpy())
    return np.stack(out, axis=1)


# ----------------------------------------------------------------------------- Rockpool
def rockpool_mlp():
    import torch
    from rockpool.nn.combinators import Sequential
    from rockpool.nn.modules import LIFTorch, LinearTorch

    torch.manual_seed(0)
    m = Sequential(LinearTorch((20, 10)), LIFTorch(10), LinearTorch((10, 5)), LIFTorch(5))
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "weight" in name:
                p.mul_(0.08)
    return m


def rockpool_conv():
    """Rockpool has no convolution module: a torch Conv2d inside Rockpool's Sequential."""
    import torch
    from rockpool.nn.combinators import Sequential
    from rockpool.nn.modules import LIFTorch, LinearTorch

    torch.manual_seed(0)
    return Sequential(torch.nn.Conv2d(2, 4, 3, stride=2), torch.nn.Flatten(), LinearTorch((144, 5)), LIFTorch(5))


def rockpool_forward(model, x: np.ndarray) -> np.ndarray:
    import torch

    model.reset_state()
    with torch.no_grad():
        out, _, _ = model(torch.from_numpy(x))
    return out.detach().numpy()


def require(name: str) -> None:
    """Skip the calling test when a framework is not installed."""
    pytest.importorskip(name)


FORWARD: Dict[str, Callable] = {"sinabs": sinabs_forward, "snntorch": snntorch_forward, "norse": norse_forward,
                                "rockpool": rockpool_forward}
