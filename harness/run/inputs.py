"""Input spikes for a run: seeded random Bernoulli spikes, or a user's file.

Shapes: every array is ``(batch, time, *input_shape)`` where ``input_shape`` is the NIR
Input node's shape (no batch, no time).
"""
from __future__ import annotations

import os
from typing import Optional, Sequence, Tuple

import numpy as np

from s2common.errors import DataNotFoundError, InputDataError

#: Keys of the input array in an .npz, in order of preference: the gate's datasets use ``spikes``.
NPZ_INPUT_KEYS = ("spikes", "inputs")
#: The most input values (batch x ticks x input neurons) generated at once: 2**31 bools = 2 GiB.
MAX_INPUT_ELEMENTS = 2 ** 31


def random_spikes(shape: Sequence[int], *, batch: int, ticks: int, density: float, seed: int) -> np.ndarray:
    """Bernoulli spikes, bool (batch, ticks, *shape), each entry 1 with probability ``density``.

    Deterministic for a given seed (numpy's PCG64), whatever the machine.
    """
    if not 0.0 <= density <= 1.0:
        raise InputDataError(f"--density must be in [0, 1], got {density}", rule="bad-option")
    if batch < 1 or ticks < 1:
        raise InputDataError(f"--batch and --ticks must be >= 1 (got {batch}, {ticks})", rule="bad-option")
    elements = int(batch) * int(ticks) * int(np.prod(shape, dtype=np.int64))
    if elements > MAX_INPUT_ELEMENTS:
        raise InputDataError(f"--batch {batch} x --ticks {ticks} x {int(np.prod(shape))} inputs = {elements:.3g} input values, "
                             f"more than the {MAX_INPUT_ELEMENTS:.3g} s2gate generates at once", rule="input-too-large",
                             hint="run fewer samples or ticks per call")
    rng = np.random.default_rng(seed)
    return rng.random((batch, ticks, *shape)) < density


def load_inputs(path: "str | os.PathLike[str]", input_shape: Sequence[int], input_node: str = "input", *,
                spikes: bool = False) -> np.ndarray:
    """Read inputs of shape (batch, time, *input_shape) from ``.npy``, ``.npz`` or a NIR data file.

    The one input loader of s2gate (``s2gate run``, ``s2gate vectors``). ``.npz``: the array
    ``spikes`` (the key the gate's datasets use), else ``inputs``, else the only array. NIR data
    files (``nir.write_data``, also :meth:`Recording.save`): the TimeGriddedData of the Input
    node ``input_node`` (else the only node), reshaped. ``(batch, time, prod(input_shape))`` is
    reshaped. Never unpickles.

    With ``spikes``: the values must be 0/1 (or bool) and come back as bool, and a
    ``(time, *input_shape)`` array is one sample (test vectors for a board).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataNotFoundError("input file not found", file=path, hint="give a .npy/.npz of shape (batch, time, *input_shape)")
    shape = tuple(int(s) for s in input_shape)
    try:
        if path.endswith(".npy"):
            arr = np.load(path, allow_pickle=False)
        elif path.endswith(".npz"):
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.keys())
                key = next((k for k in NPZ_INPUT_KEYS if k in keys), keys[0] if len(keys) == 1 else None)
                if key is None:
                    raise InputDataError(f".npz holds {keys}; name the input array 'spikes'", file=path, rule="bad-input",
                                         hint="np.savez(path, spikes=x) with x of shape (batch, time, *input_shape)")
                arr = z[key]
        else:
            arr = _from_nir_data(path, input_node)
    except InputDataError:
        raise
    except Exception as exc:
        raise InputDataError(f"cannot read inputs ({type(exc).__name__}: {exc})", file=path, rule="bad-input") from exc
    arr = np.asarray(arr)
    if arr.dtype.kind not in "biuf":
        raise InputDataError(f"inputs have dtype {arr.dtype}; use bool or numbers", file=path, rule="bad-input")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise InputDataError("inputs contain NaN or inf", file=path, rule="non-finite-input",
                             hint="spike inputs are 0/1 per neuron and tick")
    if spikes and arr.ndim in (len(shape) + 1, 2) and (tuple(arr.shape[1:]) == shape or
                                                        (arr.ndim == 2 and arr.shape[1] == int(np.prod(shape)))):
        arr = arr[None]  # one sample
    if arr.ndim == len(shape) + 2 and tuple(arr.shape[2:]) == shape:
        pass
    elif arr.ndim == 3 and arr.shape[2] == int(np.prod(shape)):
        arr = arr.reshape(arr.shape[0], arr.shape[1], *shape)
    else:
        raise InputDataError(f"inputs have shape {arr.shape}, expected (batch, time, {', '.join(map(str, shape))})",
                             file=path, rule="bad-input", hint="add a batch dimension for a single sample")
    if spikes:
        if not np.all((arr == 0) | (arr == 1)):
            raise InputDataError("input spikes must be 0/1 (or bool)", file=path, rule="input-not-spikes")
        arr = arr.astype(bool)
    return arr


def _from_nir_data(path: str, input_node: str) -> np.ndarray:
    import nir

    data = nir.read_data(path)
    node = data.nodes.get(input_node)
    if node is None:
        if len(data.nodes) != 1:
            raise InputDataError(f"the file has no node '{input_node}' and {len(data.nodes)} others; name the Input node",
                                 file=path, rule="bad-input")
        node = next(iter(data.nodes.values()))
    obs = next(iter(node.observables.values()))
    if not hasattr(obs, "data"):
        dt = 1.0
        obs = obs.to_time_gridded(dt)
    return np.asarray(obs.data)


def input_summary(x: np.ndarray) -> Tuple[int, int, float]:
    """(batch, ticks, mean density) of an input array."""
    return int(x.shape[0]), int(x.shape[1]), float(np.mean(x != 0)) if x.size else 0.0


def parse_record(value: Optional[str]):
    """``--record`` value: None, "all", or a comma-separated list of node names."""
    if value is None or value == "":
        return None
    if value == "all":
        return "all"
    return [v.strip() for v in value.split(",") if v.strip()]
