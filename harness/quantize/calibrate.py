"""Calibrated PTQ: each population's percentile (and optionally a bias correction) chosen on calibration data.

Plain PTQ (:func:`harness.quantize.ptq.quantize_ptq`) takes one percentile p for every
population. Here p is chosen per population (per group of populations sharing weights, see
:mod:`harness.quantize.topology`; per output channel with ``per_channel=True``) from a grid, to
best preserve the float model on calibration samples the caller keeps disjoint from its test
samples. Without calibration data nothing changes: this module is only used when asked.

**Objective.** One float run of the graph on the calibration inputs (the reference simulator,
the model's preset) gives every spiking population's and the Input's activity summed over the
window, ``n_src`` (batch, *shape): the spike counts. Every weight node is linear, so the error
that quantization adds to a population's input *summed over the window* is the weight error
applied to the counts,

    E = sum_w  (W_w - q_w / lambda) * n_src(w)      (batch, *population shape), float units,

(pass-through nodes such as SumPool2d and Flatten applied to the counts as the graph does). An
IF neuron without leak turns the summed input into its spike count (``v = sum I - k theta``),
so ``r E / theta`` is, to first order, the change of each neuron's spike count that
quantization causes while the rest of the network keeps its float activity. The objective of a
population is the mean of ``(r E / theta)**2`` over calibration samples and neurons (per
channel: over samples and the channel's neurons), i.e. the mean squared spike-count error it
would add; p minimises it over the grid (ties to the larger p, which clips less). For leaky
neurons (LIF, CubaLIF) the summed input is the same first-order proxy without the leak's
weighting. Every population is chosen against the float network's activity, so the choices are
independent of each other and cost one float run plus linear algebra.

**Grid** (:data:`DEFAULT_GRID`, 99.0-100): p = 100 maps the largest weight to code 127 and
clips nothing; lower p trades clipping of the largest (1 - p/100) of the weights for a finer
grid for all others. Below 99 the clipped 1 % already dominates (issue 4 measured p = 99 below
p = 100 on cnn_sinabs), so the grid stops there; between, it is dense towards 100 where
layers with a few hundred weights clip only their few largest: 99, 99.5, 99.8, 99.9, 99.95,
99.99, 100.

**Bias correction** (``bias_correction=True``; Affine/Conv nodes with a bias that feed their
population directly): the mean of ``E`` over calibration samples and positions, per output
channel, is an offset a bias can take back; it is spread over the ticks the bias is added,
``delta_b = -mean(E) / T``, and added to the float bias before scaling. The objective then
uses the residual ``E - mean(E)``. The correction lands in the weight node's metadata
(``bias_correction``, float units), so :func:`harness.quantize.format.dequantize` returns the
corrected float view, which is what the chip computes.

**Rounding search** (``rounding_search=True``, nearest rounding only): instead of rounding each
weight to its nearest code, the codes of each output row are chosen one input column at a time,
and the rounding error of each column is pushed onto the columns not yet rounded so that the
row's summed-input error ``dW n`` stays small on the calibration counts (the error-feedback
rule of OBQ/GPTQ: Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for Generative
Pre-trained Transformers", algorithm 1, with the Hessian ``H = sum n n^T`` of the objective
above, 1 % damping, columns in order of decreasing ``H_jj``). Codes stay in [-127, 127]; the
scale is the grid point's, so the percentile is chosen with the searched codes. A row's
codes depend only on that row, so per-channel choices stay separable.

Metadata: every node's ``s2gate.quant`` holds its group's chosen ``percentile`` (a list per
channel); the graph's holds ``calibrated = True`` and the settings (``calibration_grid``,
``calibration_samples``, ``calibration_ticks``, ``calibration_objective``,
``calibration_digest`` = sha256 of the calibration inputs, ``bias_correction``).

Public source followed for the bias correction: Nagel et al. 2019, "Data-Free Quantization
Through Weight Equalization and Bias Correction" (the empirical variant, section 4.2).
"""
from __future__ import annotations

import copy
import hashlib
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from s2common.errors import InputDataError, QuantizationError
from s2common.graph import FlatGraph, node_type

from .format import BIAS_TYPES, POPULATION_PARAMS, SPIKING_TYPES, scale_array
from .ptq import QuantizedGraph, _check_settings, _codes, _flatten, _group_scale, quantize_ptq
from .topology import PASS_THROUGH, Group, analyse

#: the percentile grid (see the module docstring for why these points)
DEFAULT_GRID: Tuple[float, ...] = (99.0, 99.5, 99.8, 99.9, 99.95, 99.99, 100.0)
#: the objective, as recorded in metadata and reports
OBJECTIVE = ("mean squared error of each neuron's input summed over the window, in units of its threshold "
             "(r E / theta), with the float network's calibration activity")
#: samples per reference run during calibration (bounds the recording's memory)
CHUNK = 32
#: damping of the rounding search's Hessian, relative to the mean of its diagonal (GPTQ's default)
DAMP = 0.01


@dataclass
class GroupChoice:
    """The calibration of one group of populations.

    Attributes:
        populations, weights: the group (see :class:`harness.quantize.topology.Group`).
        percentile: the chosen p (per channel: a list over output channels).
        objective: grid point -> objective (per channel: the mean over channels at that p).
        chosen_objective: the objective at the choice (per channel: mean over channels).
        bias_corrected: weight nodes that got a bias correction.
        note: why calibration did not apply (the group then keeps the default percentile), else "".
    """

    populations: List[str]
    weights: List[str]
    percentile: Any
    objective: Dict[float, float]
    chosen_objective: float
    bias_corrected: List[str] = field(default_factory=list)
    note: str = ""


@dataclass
class Calibration:
    """What :func:`calibrate` chose, with the settings (a typed record for reports)."""

    grid: Tuple[float, ...]
    samples: int
    ticks: int
    preset: str
    per_channel: bool
    bias_correction: bool
    rounding: str
    digest: str
    choices: List[GroupChoice]
    rounding_search: bool = False
    objective: str = OBJECTIVE

    def percentiles(self) -> Dict[str, Any]:
        """population -> chosen percentile, the form :func:`quantize_ptq` takes."""
        return {pp: c.percentile for c in self.choices if not c.note for pp in c.populations}

    def metadata(self) -> Dict[str, Any]:
        """Entries for the graph's ``s2gate.quant`` metadata."""
        return {"calibrated": True, "calibration_grid": list(self.grid), "calibration_samples": self.samples,
                "calibration_ticks": self.ticks, "calibration_objective": self.objective,
                "calibration_digest": self.digest, "calibration_preset": self.preset,
                "bias_correction": bool(self.bias_correction), "rounding_search": bool(self.rounding_search)}

    def rows(self) -> List[Dict[str, Any]]:
        """One dict per group: populations, chosen p, objective at p = 100 and at the choice."""
        out = []
        for c in self.choices:
            p = c.percentile
            out.append({"populations": ",".join(c.populations), "weights": ",".join(c.weights),
                        "percentile": p if not isinstance(p, list) else f"{min(p):g}..{max(p):g}",
                        "objective_p100": c.objective.get(100.0), "objective": c.chosen_objective,
                        "bias_corrected": ",".join(c.bias_corrected), "note": c.note})
        return out

    def table(self, tablefmt: str = "simple") -> str:
        from tabulate import tabulate

        rows = [[r["populations"], r["weights"], r["percentile"],
                 "" if r["objective_p100"] is None else f"{r['objective_p100']:.4g}", f"{r['objective']:.4g}",
                 r["bias_corrected"] or "-", r["note"]] for r in self.rows()]
        return tabulate(rows, headers=["population", "weights", "percentile", "objective p=100", "objective chosen",
                                       "bias corrected", "note"], tablefmt=tablefmt)


def load_calibration(path: "str | os.PathLike[str]") -> np.ndarray:
    """Calibration inputs (N, T, *input_shape) from a ``.npz`` with an array ``spikes`` (labels are not needed).

    Raises:
        InputDataError: missing file, no ``spikes`` array, fewer than 3 dimensions, no samples, NaN/inf.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputDataError("calibration file not found", file=path, rule="bad-calibration",
                             hint="save one with np.savez(path, spikes=(N, T, *input_shape)) from samples "
                                  "disjoint from the test split")
    try:
        with np.load(path, allow_pickle=False) as f:
            if "spikes" not in getattr(f, "files", ()):
                raise InputDataError(f"the .npz file has no array 'spikes' (it has: {', '.join(f.files) or 'nothing'})",
                                     file=path, rule="bad-calibration",
                                     hint="np.savez(path, spikes=(N, T, *input_shape))")
            x = np.asarray(f["spikes"])
    except InputDataError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy/zipfile raise many kinds
        raise InputDataError(f"cannot read the calibration file ({type(exc).__name__}: {exc})", file=path,
                             rule="bad-calibration") from exc
    _check_inputs(x, path)
    return x


def _check_inputs(x: np.ndarray, file: Optional[str] = None) -> None:
    if x.ndim < 3 or x.shape[0] == 0 or x.shape[1] == 0:
        raise InputDataError(f"calibration inputs have shape {x.shape}; expected (N, T, *input_shape) with N, T > 0",
                             file=file, rule="bad-calibration")
    if x.dtype.kind not in "biuf" or (x.dtype.kind == "f" and not np.all(np.isfinite(x))):
        raise InputDataError(f"calibration inputs must be finite numbers, got {x.dtype}", file=file,
                             rule="bad-calibration")


def data_digest(x: np.ndarray) -> str:
    """sha256 over the calibration inputs' shape, dtype and bytes."""
    h = hashlib.sha256(f"{x.shape}{x.dtype}".encode())
    h.update(np.ascontiguousarray(x).tobytes())
    return h.hexdigest()


def graph_preset(graph: object) -> str:
    """The reference preset a graph names in ``metadata["s2gate.preset"]`` (default ``"spinnaker2"``, as the gate)."""
    meta = getattr(graph, "metadata", None) or {}
    preset = meta.get("s2gate.preset")
    return str(preset.decode() if isinstance(preset, bytes) else preset) if preset else "spinnaker2"


def activity(graph: object, spikes: np.ndarray, *, preset: str = "spinnaker2", dt: Optional[float] = None,
             chunk: int = CHUNK) -> Dict[str, np.ndarray]:
    """Each spiking node's output (and the Input's) summed over time: node -> (batch, *shape) float64.

    Runs the float graph on the reference simulator in chunks of ``chunk`` samples.
    ``spikes``: (batch, time, *input_shape).
    """
    from reference import simulate
    from reference.simulate import as_flat

    flat = as_flat(graph)
    inp = flat.inputs[0]
    out: Dict[str, List[np.ndarray]] = {}
    for lo in range(0, len(spikes), chunk):
        x = spikes[lo:lo + chunk]
        rec = simulate(graph, x, preset=preset, dt=dt)
        for name in flat.order:
            if flat.type_of(name) in SPIKING_TYPES:
                out.setdefault(name, []).append(rec.spikes(name).sum(axis=1, dtype=np.float64))
        out.setdefault(inp, []).append(np.asarray(x, dtype=np.float64).sum(axis=1))
    return {k: np.concatenate(v) for k, v in out.items()}


class _Unsupported(Exception):
    """Calibration cannot model this path (the group keeps the default percentile)."""


def _op(flat: FlatGraph, name: str, node: Optional[object] = None) -> Any:
    from reference.ops import make_op

    if flat.type_of(name) == "Delay":  # a delay moves spikes in time; their sum over the window is the same
        return lambda a: a
    return make_op(name, node if node is not None else flat.nodes[name], flat.in_shape[name], flat.out_shape[name],
                   np.float64)


def _input_counts(flat: FlatGraph, name: str, counts: Mapping[str, np.ndarray], cache: Dict[str, np.ndarray]
                  ) -> np.ndarray:
    """The summed activity arriving at ``name`` (batch, *in_shape): its predecessors' counts, through pass-throughs."""
    total = None
    for src in flat.predecessors(name):
        if src in cache:
            val = cache[src]
        elif src in counts:
            val = counts[src]
        elif flat.type_of(src) in PASS_THROUGH:
            val = _op(flat, src)(_input_counts(flat, src, counts, cache))
            cache[src] = val
        else:
            raise _Unsupported(f"'{src}' ({flat.type_of(src)}) feeds '{name}' and has no spike counts")
        total = val if total is None else total + val
    if total is None:
        raise _Unsupported(f"'{name}' has no input")
    return total


def _forward(flat: FlatGraph, start: str, target: str, value: np.ndarray) -> np.ndarray:
    """``value`` (the output of ``start``) carried through pass-through nodes to ``target``'s input (summed over paths)."""
    total = None
    for nxt in flat.successors(start):
        if nxt == target:
            part = value
        elif flat.type_of(nxt) in PASS_THROUGH:
            try:
                part = _forward(flat, nxt, target, _op(flat, nxt)(value))
            except _Unsupported:
                continue
        else:
            continue
        total = part if total is None else total + part
    if total is None:
        raise _Unsupported(f"no pass-through path from '{start}' to '{target}'")
    return total


def _neuron_weight(node: object, shape: Tuple[int, ...]) -> np.ndarray:
    """r / theta per neuron (1 where the node has no threshold): the objective's unit."""
    typ = node_type(node)
    th = getattr(node, "v_threshold", None) if typ != "Threshold" else getattr(node, "threshold", None)
    if th is None or typ not in SPIKING_TYPES:
        return np.ones(shape)
    r = getattr(node, "r", None)
    r = np.ones(shape) if r is None else np.broadcast_to(np.abs(np.asarray(r, dtype=np.float64)), shape)
    th = np.broadcast_to(np.abs(np.asarray(th, dtype=np.float64)), shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.where(th > 0, r / np.where(th > 0, th, 1.0), 1.0)
    return u


def _group_codes(flat: FlatGraph, group: Group, lam: np.ndarray, rounding: str,
                 hessians: Optional[Mapping[str, np.ndarray]] = None) -> Dict[str, np.ndarray]:
    """weight node -> codes at scale ``lam``: nearest/truncate, or the rounding search where a Hessian is given."""
    out = {}
    for w in group.weights:
        node = flat.nodes[w]
        wt = np.asarray(node.weight, dtype=np.float64)
        lam_w = scale_array(lam, wt.shape)
        if hessians is not None and w in hessians:
            rows = wt.reshape(wt.shape[0], -1)
            lam_r = np.broadcast_to(np.asarray(lam, dtype=np.float64).reshape(-1, 1) if np.ndim(lam)
                                    else np.asarray(lam, dtype=np.float64), rows.shape)
            out[w] = search_codes(rows, lam_r[:, :1], hessians[w]).reshape(wt.shape)
        else:
            out[w] = _codes(wt * lam_w, rounding, conv=node_type(node) in ("Conv1d", "Conv2d"))[0]
    return out


def search_codes(w: np.ndarray, lam: np.ndarray, h: np.ndarray, damp: float = DAMP) -> np.ndarray:
    """Error-feedback rounding of the rows of ``w`` (rows, cols) on the grid ``1/lam`` (rows, 1) (GPTQ, algorithm 1).

    Minimises, row by row and approximately, ``(w - q/lam) H (w - q/lam)^T`` for the Hessian ``h``
    (cols, cols) of the inputs; codes are whole numbers clipped to [-127, 127]. Columns that never
    saw input (``H_jj = 0``) are rounded to nearest and get no compensation.
    """
    from .format import QMAX

    w = np.array(w, dtype=np.float64)
    rows, cols = w.shape
    h = np.array(h, dtype=np.float64)
    diag = np.diag(h).copy()
    dead = diag <= 0
    h[dead, dead] = 1.0
    perm = np.argsort(-diag, kind="stable")
    w = w[:, perm]
    h = h[np.ix_(perm, perm)]
    mean = float(np.mean(np.diag(h)))
    h[np.diag_indices(cols)] += damp * mean
    try:
        u = np.linalg.cholesky(np.linalg.inv(h)).T  # upper: inv(H) = u^T u
    except np.linalg.LinAlgError:
        return np.clip(np.rint(w[:, np.argsort(perm)] * lam), -QMAX, QMAX)
    q = np.zeros_like(w)
    for j in range(cols):
        col = w[:, j]
        qj = np.clip(np.rint(col * lam[:, 0]), -QMAX, QMAX)
        q[:, j] = qj
        err = (col - qj / lam[:, 0]) / u[j, j]
        if j + 1 < cols:
            w[:, j + 1:] -= np.outer(err, u[j, j + 1:])
    return q[:, np.argsort(perm)]


def _hessian(flat: FlatGraph, w: str, n_in: np.ndarray) -> Optional[np.ndarray]:
    """``H = sum n n^T`` over calibration samples (and conv positions) of a weight node's input counts, or None."""
    import torch

    node = flat.nodes[w]
    typ = node_type(node)
    x = np.asarray(n_in, dtype=np.float64)
    if typ in ("Affine", "Linear"):
        cols = x.reshape(x.shape[0], -1)
    elif typ in ("Conv1d", "Conv2d"):
        from s2common.graph import conv_padding, pair

        if int(np.asarray(node.groups).ravel()[0]) != 1:
            return None
        wt = np.asarray(node.weight)
        pad = conv_padding(node, w, flat.in_shape[w][1:])
        t = torch.from_numpy(x)
        if typ == "Conv1d":
            t = t[..., None]
            kernel, stride = (wt.shape[2], 1), (int(np.atleast_1d(node.stride)[0]), 1)
            dil, pad2 = (int(np.atleast_1d(node.dilation)[0]), 1), (pad[0], 0)
        else:
            kernel, stride = tuple(wt.shape[2:]), pair(node.stride, "stride", w)
            dil, pad2 = pair(node.dilation, "dilation", w), tuple(pad)
        patches = torch.nn.functional.unfold(t, kernel, dilation=dil, padding=pad2, stride=stride)  # (B, C*k, L)
        cols = patches.transpose(1, 2).reshape(-1, patches.shape[1]).numpy()
    else:
        return None
    return cols.T @ cols


def _group_errors(flat: FlatGraph, group: Group, codes: Mapping[str, np.ndarray], lam: np.ndarray,
                  n_in: Mapping[str, np.ndarray]) -> Dict[str, Dict[str, np.ndarray]]:
    """population -> weight node -> summed input error E_w (batch, *population shape) of ``codes`` at scale ``lam``."""
    out: Dict[str, Dict[str, np.ndarray]] = {pp: {} for pp in group.populations}
    for w in group.weights:
        node = flat.nodes[w]
        wt = np.asarray(node.weight, dtype=np.float64)
        lam_w = scale_array(lam, wt.shape)
        q = codes[w]
        err_node = copy.copy(node)
        err_node.weight = wt - q / lam_w
        if node_type(node) in BIAS_TYPES:
            err_node.bias = np.zeros(flat.out_shape[w][:1] if node_type(node) != "Affine" else flat.out_shape[w])
        e = _op(flat, w, err_node)(n_in[w])
        for pp in group.populations:
            try:
                out[pp][w] = _forward(flat, w, pp, e)
            except _Unsupported:
                pass
    return out


def _channel_axes(ndim: int) -> Tuple[int, ...]:
    """Axes averaged for one output channel of a (batch, C, ...) array: batch and all but C."""
    return (0,) + tuple(range(2, ndim))


def _objective(flat: FlatGraph, group: Group, errs: Dict[str, Dict[str, np.ndarray]], correct: Sequence[str],
               per_channel: bool) -> np.ndarray:
    """The objective: scalar (per tensor) or (C,) per channel; ``correct``: weight nodes whose mean error a bias takes back."""
    total_sq = None
    count = 0
    for pp, parts in errs.items():
        if not parts:
            continue
        e = None
        for w, ew in parts.items():
            if w in correct:
                ew = ew - ew.mean(axis=_channel_axes(ew.ndim), keepdims=True)
            e = ew if e is None else e + ew
        u = _neuron_weight(flat.nodes[pp], flat.out_shape[pp])
        sq = (e * u[None]) ** 2
        if per_channel:
            s = sq.mean(axis=_channel_axes(sq.ndim)) if sq.ndim > 1 else sq.mean(axis=0)
        else:
            s = sq.mean()
        total_sq = s if total_sq is None else total_sq + s
        count += 1
    if total_sq is None:
        raise _Unsupported("no population of the group is reached by its weights through pass-through nodes")
    return np.asarray(total_sq / count)


def _bias_targets(flat: FlatGraph, group: Group) -> List[str]:
    """Weight nodes of the group whose bias can take back their mean error: Affine/Conv feeding one population directly."""
    out = []
    for w in group.weights:
        succ = flat.successors(w)
        if node_type(flat.nodes[w]) in BIAS_TYPES and getattr(flat.nodes[w], "bias", None) is not None \
                and len(succ) == 1 and succ[0] in group.populations:
            out.append(w)
    return out


def calibrate(graph: object, spikes: np.ndarray, *, grid: Sequence[float] = DEFAULT_GRID, per_channel: bool = False,
              bias_correction: bool = False, rounding_search: bool = False, rounding: str = "nearest",
              preset: Optional[str] = None, dt: Optional[float] = None, file: Optional[str] = None
              ) -> Tuple[Calibration, Dict[str, np.ndarray], Dict[str, np.ndarray]]:
    """Choose each group's percentile on calibration inputs (see the module docstring for the objective).

    Args:
        graph: the float NIR graph (not changed).
        spikes: calibration inputs (N, T, *input_shape), disjoint from the samples the result is judged on.
        grid: candidate percentiles, each in (0, 100].
        per_channel: one scale (and one chosen p) per output channel.
        bias_correction: also correct the biases of Affine/Conv nodes (see the module docstring).
        rounding_search: choose codes by error-feedback rounding (see the module docstring; nearest only).
        rounding: ``"nearest"`` or ``"truncate"``, as :func:`quantize_ptq`.
        preset, dt: the reference simulator's preset and tick for the float run (default: the graph's
            ``s2gate.preset``, else ``"spinnaker2"``).

    Returns:
        (calibration record, bias offsets: weight node -> float-unit offset, searched codes: weight node ->
        codes), the last two as :func:`quantize_ptq` takes them.
    """
    if rounding_search and rounding != "nearest":
        raise QuantizationError("the rounding search replaces rounding to nearest; it cannot model the vendor's "
                                "truncation", rule="bad-rounding", hint="use rounding='nearest' with rounding_search")
    grid_t = tuple(sorted({_check_settings(p, rounding) for p in grid}))
    if not grid_t:
        raise QuantizationError("the percentile grid is empty", rule="bad-percentile")
    x = np.asarray(spikes)
    _check_inputs(x, file)
    preset = preset or graph_preset(graph)
    flat = _flatten(copy.deepcopy(graph), file)
    topo = analyse(flat)
    counts = activity(flat, x, preset=preset, dt=dt)
    ticks = int(x.shape[1])
    cache: Dict[str, np.ndarray] = {}
    choices: List[GroupChoice] = []
    offsets: Dict[str, np.ndarray] = {}
    searched: Dict[str, np.ndarray] = {}
    for g in topo.groups:
        try:
            n_in = {w: _input_counts(flat, w, counts, cache) for w in g.weights}
            targets = _bias_targets(flat, g) if bias_correction else []
            hess = None
            if rounding_search:
                hess = {w: h for w in g.weights if (h := _hessian(flat, w, n_in[w])) is not None}
            objs: Dict[float, np.ndarray] = {}
            errs_at: Dict[float, Dict[str, Dict[str, np.ndarray]]] = {}
            codes_at: Dict[float, Dict[str, np.ndarray]] = {}
            for p in grid_t:
                try:
                    lam, _ = _group_scale(flat, g, p, per_channel)
                except QuantizationError as err:
                    if err.rule == "zero-percentile":  # mostly-zero weights: this low p is impossible, skip it
                        continue
                    raise
                codes_at[p] = _group_codes(flat, g, lam, rounding, hess)
                errs_at[p] = _group_errors(flat, g, codes_at[p], lam, n_in)
                objs[p] = _objective(flat, g, errs_at[p], targets, per_channel)
            if not objs:
                raise _Unsupported("every grid point gives an infinite scale (mostly-zero weights)")
        except _Unsupported as why:
            choices.append(GroupChoice(populations=list(g.populations), weights=list(g.weights), percentile=100.0,
                                       objective={}, chosen_objective=float("nan"), note=f"not calibrated: {why}"))
            continue
        # choose: descending p, strictly better only (ties go to less clipping)
        order = sorted(objs, reverse=True)
        if per_channel and np.ndim(objs[order[0]]):
            stack = np.stack([objs[p] for p in order])  # (grid, C)
            best = np.argmin(stack, axis=0)  # first minimum = largest p
            chosen: Any = [float(order[i]) for i in best]
            chosen_obj = float(stack[best, np.arange(stack.shape[1])].mean())
        else:
            vals = [float(np.mean(objs[p])) for p in order]
            i = int(np.argmin(vals))
            chosen = float(order[i])
            chosen_obj = vals[i]
        if isinstance(chosen, list):  # rows from each channel's grid point (a row's codes depend on that row only)
            lam, _ = _group_scale(flat, g, chosen, per_channel)
            codes = {w: np.stack([codes_at[pc][w][c] for c, pc in enumerate(chosen)]) for w in g.weights}
            errs = _group_errors(flat, g, codes, lam, n_in) if targets else {}
        else:
            codes, errs = codes_at[chosen], errs_at[chosen]
        if hess:
            searched.update({w: codes[w] for w in hess})
        if targets:
            for w in targets:
                pp = flat.successors(w)[0]
                ew = errs[pp].get(w)
                if ew is None:
                    continue
                mean = ew.mean(axis=_channel_axes(ew.ndim)) if ew.ndim > 1 else ew.mean(axis=0)
                offsets[w] = -mean / ticks
        choices.append(GroupChoice(populations=list(g.populations), weights=list(g.weights), percentile=chosen,
                                   objective={p: float(np.mean(v)) for p, v in objs.items()},
                                   chosen_objective=chosen_obj, bias_corrected=[w for w in targets if w in offsets]))
    cal = Calibration(grid=grid_t, samples=int(x.shape[0]), ticks=ticks, preset=str(preset), per_channel=bool(per_channel),
                      bias_correction=bool(bias_correction), rounding=rounding, digest=data_digest(x), choices=choices,
                      rounding_search=bool(rounding_search))
    return cal, offsets, searched


def quantize_calibrated(graph: object, spikes: np.ndarray, *, grid: Sequence[float] = DEFAULT_GRID,
                        per_channel: bool = False, bias_correction: bool = False, rounding_search: bool = False,
                        rounding: str = "nearest",
                        preset: Optional[str] = None, dt: Optional[float] = None,
                        source: "Optional[str | os.PathLike[str]]" = None) -> QuantizedGraph:
    """:func:`calibrate`, then :func:`quantize_ptq` with the chosen percentiles and bias offsets.

    The result's ``calibration`` attribute is the :class:`Calibration`; its choices are also in the
    nodes' and the graph's ``s2gate.quant`` metadata. Arguments as :func:`calibrate`.
    """
    file = None if source is None else os.fspath(source)
    cal, offsets, codes = calibrate(graph, spikes, grid=grid, per_channel=per_channel, bias_correction=bias_correction,
                                    rounding_search=rounding_search, rounding=rounding, preset=preset, dt=dt, file=file)
    qg = quantize_ptq(graph, percentile=100.0, per_channel=per_channel, rounding=rounding, source=source,
                      percentiles=cal.percentiles(), bias_offsets=offsets, codes=codes, calibration=cal.metadata())
    qg.calibration = cal
    qg.warnings.extend(c.note for c in cal.choices if c.note)
    return qg
