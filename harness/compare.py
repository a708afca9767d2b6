"""Offline comparison of two recordings: exact, and ambiguity-aware for float vs int8.

Two kinds of comparison live here.

* :func:`compare_recordings` is exact. Spikes must be equal; float voltages must be equal
  bit for bit (the arrays are compared as unsigned integers of their width, so ``-0.0`` and
  ``0.0`` differ and one flipped mantissa bit is found); integer inputs must be equal. It
  reports per (node, observable) how many elements differ and the first tick, and one
  :class:`Divergence`: the earliest tick, then the lowest layer in the expected recording's
  node order, then the lowest sample, then the lowest neuron (flat C-order index), then the
  order of ``observables``. This is what emulator vs golden model, emulator vs board, and two
  runs of one engine must satisfy.

* The ambiguity-aware rule (:func:`ambiguity_mask`, :func:`classify_spike_trains`,
  :func:`check_equivalence`) is for the int8 emulator (float32 arithmetic) against the float64
  reference running the *same quantized graph*. Where the reference's pre-reset voltage lies
  within rounding distance of the threshold, the two may legitimately decide differently,
  and after that decision the difference may propagate. See :func:`ambiguity_epsilon` for the
  bound.

Time alignment: ``time_shift = k`` compares ``actual[:, t + k]`` with ``expected[:, t]``; ticks
are reported in the expected recording's time base, only ticks present in both are compared.
The emulator and the reference's ``"spinnaker2"`` preset both have one tick of latency per
projection, so they align with ``k = 0``; a board run that starts one tick late needs ``k = 1``
(the NIR paper's SpiNNaker2 CNN run used ``x.shape[0] + 1`` ticks for this reason,
neuromorphs/NIR ``paper/02_cnn/s2_apply.py``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from s2common.errors import S2GateError
from s2common.graph import THRESHOLD_NEURON_TYPES, as_flat, feeding_populations
from s2common.recording import Recording

#: float32 unit roundoff (round to nearest): |fl(x) - x| <= U32 * |x|.
U32 = 2.0 ** -24


class RecordingMismatchError(S2GateError):
    """Two recordings cannot be compared (different batch, node shapes, nothing in common)."""

    rule_default = "recordings-incomparable"


# --------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class Divergence:
    """One place where two recordings differ.

    Attributes:
        node: NIR node name (the "layer").
        neuron: flat index of the neuron in the node's shape (C order).
        index: the same index unravelled, e.g. ``(c, y, x)``.
        tick: tick in the expected recording's time base.
        sample: batch index.
        observable: ``"spikes"``, ``"v"``, ``"i"`` or ``"output"``.
        expected, actual: the two values (Python scalars).
    """

    node: str
    neuron: int
    index: Tuple[int, ...]
    tick: int
    sample: int
    observable: str
    expected: Any
    actual: Any

    def where(self) -> str:
        """``layer '3' neuron 17 (c=1, y=0, x=1) tick 42 sample 0``."""
        text = f"layer '{self.node}' neuron {self.neuron}"
        if len(self.index) > 1:
            text += f" ({_index_text(self.index)})"
        return text + f" tick {self.tick} sample {self.sample}"

    def describe(self) -> str:
        """One line: where, and the two values (with the float bits for voltages)."""
        return f"first divergence: {self.where()}: {self.observable} expected {_fmt(self.expected)} got {_fmt(self.actual)}"

    def to_dict(self) -> Dict[str, Any]:
        return {"node": self.node, "neuron": self.neuron, "index": list(self.index), "tick": self.tick,
                "sample": self.sample, "observable": self.observable, "expected": _jsonable(self.expected),
                "actual": _jsonable(self.actual)}


@dataclass(frozen=True)
class NodeMismatch:
    """Mismatch count of one (node, observable).

    Attributes:
        compared: number of elements compared (samples x ticks x neurons).
        mismatches: number of elements that differ.
        first_tick: earliest differing tick (expected time base), None if none differ.
        note: why it was not compared (``"missing in actual"``...), else "".
    """

    node: str
    observable: str
    compared: int
    mismatches: int
    first_tick: Optional[int]
    note: str = ""


@dataclass
class SpikeTrainReport:
    """Spike trains (one per sample and neuron) classified by the ambiguity-aware rule.

    Attributes:
        trains: number of (sample, neuron) trains compared over all nodes.
        identical: trains equal at every tick.
        ambiguous: trains that differ, but only at or after an ambiguous decision (see
            :func:`classify_spike_trains`).
        unexplained: trains that differ earlier than any ambiguous decision could explain.
        per_node: ``{node: {"trains", "identical", "ambiguous", "unexplained"}}``.
        first_unexplained: the earliest unexplained divergence, or None.
        predictions_identical: share of samples whose predicted class (argmax of output spike
            counts) is the same in both recordings; None if no output node was given/found.
        output_node: the node the predictions were taken from.
    """

    trains: int = 0
    identical: int = 0
    ambiguous: int = 0
    unexplained: int = 0
    per_node: Dict[str, Dict[str, int]] = field(default_factory=dict)
    first_unexplained: Optional[Divergence] = None
    predictions_identical: Optional[float] = None
    output_node: Optional[str] = None

    def share(self, what: str) -> float:
        """``identical``, ``ambiguous`` or ``unexplained`` as a share of all trains (1.0 if none)."""
        if not self.trains:
            return 1.0 if what == "identical" else 0.0
        return getattr(self, what) / self.trains

    @property
    def ok(self) -> bool:
        return self.unexplained == 0

    def to_dict(self) -> Dict[str, Any]:
        return {"trains": self.trains, "identical": self.identical, "ambiguous": self.ambiguous,
                "unexplained": self.unexplained, "identical_share": self.share("identical"),
                "ambiguous_share": self.share("ambiguous"), "unexplained_share": self.share("unexplained"),
                "predictions_identical": self.predictions_identical, "output_node": self.output_node,
                "per_node": self.per_node,
                "first_unexplained": None if self.first_unexplained is None else self.first_unexplained.to_dict()}


@dataclass
class Comparison:
    """The result of :func:`compare_recordings`.

    Attributes:
        rows: one :class:`NodeMismatch` per (node, observable), expected's node order.
        first_divergence: the earliest exact mismatch, or None.
        time_shift: the shift used (``actual[t + time_shift]`` vs ``expected[t]``).
        ticks: number of ticks compared.
        trains: the ambiguity-aware spike-train classification, when ``ambiguous`` was given.
        missing: spiking nodes of the expected recording (nodes with ``"spikes"``) that the
            actual recording lacks entirely; any makes ``ok`` False (a board that recorded only
            its output populations is compared with ``nodes=`` naming them).
    """

    rows: List[NodeMismatch]
    first_divergence: Optional[Divergence]
    time_shift: int = 0
    ticks: int = 0
    trains: Optional[SpikeTrainReport] = None
    missing: List[str] = field(default_factory=list)

    @property
    def mismatches(self) -> int:
        return sum(r.mismatches for r in self.rows)

    @property
    def ok(self) -> bool:
        """Exact: nothing differs. With an ambiguity mask: no unexplained spike train and
        every other observable exact. Never ok when a spiking node is missing."""
        if self.missing:
            return False
        if self.trains is None:
            return self.mismatches == 0
        other = sum(r.mismatches for r in self.rows if r.observable != "spikes")
        return other == 0 and self.trains.ok

    @property
    def first_unexplained(self) -> Optional[Divergence]:
        """The divergence that makes the comparison fail (the first exact one without a mask)."""
        if self.trains is None:
            return self.first_divergence
        if self.trains.first_unexplained is not None:
            return self.trains.first_unexplained
        non_spike = [r for r in self.rows if r.observable != "spikes" and r.mismatches]
        return self.first_divergence if non_spike else None

    def describe(self) -> str:
        """One line: ``identical (...)`` or the first (unexplained) divergence."""
        if self.ok:
            if self.trains is not None and self.trains.ambiguous:
                return (f"equivalent: {self.trains.identical}/{self.trains.trains} spike trains identical, "
                        f"{self.trains.ambiguous} differ only after an ambiguous threshold decision")
            n = len({r.node for r in self.rows if not r.note})
            return f"identical: {n} node{'s' if n != 1 else ''}, {self.ticks} ticks"
        div = self.first_unexplained
        if div is None:
            if self.missing:
                return (f"{len(self.missing)} spiking node(s) of the expected recording are not in the actual one: "
                        f"{', '.join(repr(n) for n in self.missing)} (compare chosen nodes with --nodes / nodes=)")
            return "recordings differ"  # pragma: no cover
        text = div.describe()
        return text.replace("first divergence", "first unexplained divergence", 1) if self.trains is not None else text

    def table(self, tablefmt: str = "simple") -> str:
        """Per (node, observable): compared, mismatches, first tick (tabulate)."""
        from tabulate import tabulate

        rows = [[r.node, r.observable, r.compared, r.mismatches if not r.note else r.note,
                 "" if r.first_tick is None else r.first_tick] for r in self.rows]
        return tabulate(rows, headers=["node", "observable", "compared", "mismatches", "first tick"], tablefmt=tablefmt)

    def to_dict(self) -> Dict[str, Any]:
        return {"ok": self.ok, "mismatches": self.mismatches, "time_shift": self.time_shift, "ticks": self.ticks,
                "missing": list(self.missing),
                "rows": [r.__dict__ for r in self.rows],
                "first_divergence": None if self.first_divergence is None else self.first_divergence.to_dict(),
                "trains": None if self.trains is None else self.trains.to_dict()}


# --------------------------------------------------------------------------------------------
# exact comparison


def compare_recordings(
    expected: Recording,
    actual: Recording,
    *,
    nodes: Optional[Sequence[str]] = None,
    observables: Sequence[str] = ("spikes", "v", "i"),
    time_shift: int = 0,
    ambiguous: Optional[Mapping[str, np.ndarray]] = None,
    output_node: Optional[str] = None,
    order: Optional[Sequence[str]] = None,
) -> Comparison:
    """Compare ``actual`` against ``expected`` element by element.

    Args:
        expected, actual: recordings, observables (batch, time, *shape).
        nodes: nodes to compare; None -> every node of ``expected`` (a node or observable
            recorded on one side only is listed with a note, not compared). Named nodes that
            are missing on either side raise :class:`RecordingMismatchError`.
        observables: which observables to compare (those present on both sides).
        time_shift: compare ``actual[:, t + time_shift]`` with ``expected[:, t]``.
        ambiguous: optional ``{node: bool (batch, time, *shape)}`` mask of ambiguous spike
            decisions in ``expected`` (from :func:`ambiguity_mask`); when given, spike trains are
            also classified by :func:`classify_spike_trains` and ``Comparison.ok`` uses that rule.
        output_node: node whose spike counts give the predicted class (for the share of
            identical predictions); None -> the last compared spiking node.
        order: layer order used to break ties between layers (see :func:`_node_order`).

    Raises:
        RecordingMismatchError: different batch sizes, node shapes, no overlap in time, or
            nothing to compare.
    """
    if expected.batch != actual.batch and expected.data and actual.data:
        raise RecordingMismatchError(f"batch sizes differ: expected {expected.batch} samples, actual {actual.batch}",
                                     hint="record both runs on the same inputs")
    order = _node_order(expected, actual, order)
    if nodes is None:
        names = [n for n in order if n in expected.data]
    else:
        names = list(nodes)
        for n in names:
            for rec, side in ((expected, "expected"), (actual, "actual")):
                if n not in rec.data:
                    raise RecordingMismatchError(f"node '{n}' is not in the {side} recording (it has: "
                                                 f"{', '.join(rec.nodes) or 'nothing'})", node=n,
                                                 hint="pick nodes recorded on both sides")
    rank = {n: i for i, n in enumerate(order)}
    obs_rank = {o: i for i, o in enumerate(observables)}
    rows: List[NodeMismatch] = []
    best: Optional[Tuple[Tuple[int, ...], Divergence]] = None
    ticks_compared = 0
    for node in names:
        for obs in observables:
            e = expected.get(node, obs)
            a = actual.get(node, obs)
            if e is None and a is None:
                continue
            if e is None or a is None:
                rows.append(NodeMismatch(node, obs, 0, 0, None, note=f"missing in {'actual' if a is None else 'expected'}"))
                continue
            e, a, t0 = _align(node, obs, np.asarray(e), np.asarray(a), time_shift)
            ticks_compared = max(ticks_compared, e.shape[1])
            diff = _differs(e, a)
            count = int(diff.sum())
            if not count:
                rows.append(NodeMismatch(node, obs, int(diff.size), 0, None))
                continue
            flat = diff.reshape(diff.shape[0], diff.shape[1], -1)
            tick = int(np.argmax(flat.any(axis=(0, 2))))
            sample, neuron = (int(x) for x in np.argwhere(flat[:, tick, :])[0])
            rows.append(NodeMismatch(node, obs, int(diff.size), count, tick + t0))
            shape = e.shape[2:]
            div = Divergence(node=node, neuron=neuron, index=_unravel(neuron, shape), tick=tick + t0, sample=sample,
                             observable=obs, expected=_item(e.reshape(flat.shape)[sample, tick, neuron]),
                             actual=_item(a.reshape(flat.shape)[sample, tick, neuron]))
            key = divergence_key(tick + t0, rank.get(node, len(rank)), sample, neuron) + (obs_rank[obs],)
            if best is None or key < best[0]:
                best = (key, div)
    if not any(not r.note for r in rows):
        raise RecordingMismatchError("the two recordings have no (node, observable) in common"
                                     f" (expected: {', '.join(expected.nodes) or 'nothing'};"
                                     f" actual: {', '.join(actual.nodes) or 'nothing'})",
                                     hint="record the same nodes on both sides, or pass nodes=")
    missing = [n for n in names if expected.get(n, "spikes") is not None and n not in actual.data]
    comp = Comparison(rows=rows, first_divergence=None if best is None else best[1], time_shift=time_shift,
                      ticks=ticks_compared, missing=missing)
    if ambiguous is not None and "spikes" in observables:
        spk_nodes = [r.node for r in rows if r.observable == "spikes" and not r.note]
        comp.trains = classify_spike_trains(expected, actual, ambiguous, nodes=spk_nodes, time_shift=time_shift,
                                            output_node=output_node, order=order)
    return comp


def _node_order(expected: Recording, actual: Recording, order: Optional[Sequence[str]] = None) -> List[str]:
    """Layer order for "lowest layer first": ``order`` if given, else the ``node_order`` that
    s2gate's backends store in ``meta`` (the graph's topological order; HDF5 files list groups
    alphabetically), else the expected recording's own order; nodes not covered go last."""
    base = list(order) if order is not None else (expected.meta.get("node_order") or actual.meta.get("node_order")
                                                   or expected.nodes)
    out = [n for n in base if n in expected.data or n in actual.data]
    out += [n for n in expected.nodes if n not in out]
    out += [n for n in actual.nodes if n not in out]
    return out


def _align(node: str, obs: str, e: np.ndarray, a: np.ndarray, shift: int) -> Tuple[np.ndarray, np.ndarray, int]:
    """Cut both arrays to the common ticks; returns (e, a, first expected tick).

    A side stored with its neurons flattened (a NIR data file written without s2gate's shape
    attribute: (batch, time, neurons) in C order) is reshaped to the other side's node shape.
    """
    if e.ndim >= 2 and a.ndim >= 2 and e.shape[2:] != a.shape[2:] and e.shape[0] == a.shape[0]:
        if int(np.prod(e.shape[2:])) == int(np.prod(a.shape[2:])):
            if a.ndim == 3:
                a = a.reshape(a.shape[0], a.shape[1], *e.shape[2:])
            elif e.ndim == 3:
                e = e.reshape(e.shape[0], e.shape[1], *a.shape[2:])
    if e.shape[0] != a.shape[0] or e.shape[2:] != a.shape[2:]:
        raise RecordingMismatchError(f"'{obs}' shapes differ: expected {e.shape}, actual {a.shape}"
                                     " (batch, time, *neurons)", node=node,
                                     hint="both recordings must come from the same graph and inputs")
    t0 = max(0, -shift)
    t1 = min(e.shape[1], a.shape[1] - shift)
    if t1 <= t0:
        raise RecordingMismatchError(f"no ticks in common with time shift {shift} (expected {e.shape[1]} ticks,"
                                     f" actual {a.shape[1]})", node=node, hint="check --time-shift")
    return e[:, t0:t1], a[:, t0 + shift:t1 + shift], t0


def _differs(e: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Element-wise "not identical": floats by their bits (same dtype) or value (mixed)."""
    if e.dtype == np.bool_ or a.dtype == np.bool_:
        return e.astype(bool) != a.astype(bool)
    if e.dtype.kind == "f" and e.dtype == a.dtype:
        ui = {2: np.uint16, 4: np.uint32, 8: np.uint64}[e.dtype.itemsize]
        return np.ascontiguousarray(e).view(ui) != np.ascontiguousarray(a).view(ui)
    if e.dtype.kind in "iu" and a.dtype.kind in "iu":
        return e.astype(np.int64) != a.astype(np.int64)
    # mixed float widths (e.g. a float64 file against float32): exact value comparison, NaN == NaN
    ef, af = e.astype(np.float64), a.astype(np.float64)
    return ~((ef == af) | (np.isnan(ef) & np.isnan(af)))


def _unravel(flat: int, shape: Tuple[int, ...]) -> Tuple[int, ...]:
    if not shape:
        return ()
    return tuple(int(i) for i in np.unravel_index(flat, shape))


def _index_text(index: Tuple[int, ...]) -> str:
    names = {2: ("c", "x"), 3: ("c", "y", "x")}.get(len(index), tuple(f"d{i}" for i in range(len(index))))
    return ", ".join(f"{n}={i}" for n, i in zip(names, index))


def _item(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else x


def _fmt(x: Any) -> str:
    if isinstance(x, bool):
        return str(int(x))
    if isinstance(x, float):
        bits = np.float32(x)
        if float(bits) == x:  # representable in float32: show its bits too
            return f"{x!r} (0x{np.asarray(bits).view(np.uint32).item():08x})"
        return repr(x)
    return str(x)


def _jsonable(x: Any) -> Any:
    return int(x) if isinstance(x, bool) else x


# --------------------------------------------------------------------------------------------
# ambiguity-aware rule


def ambiguity_epsilon(v_pre: np.ndarray, threshold: np.ndarray, *, v_prev: Optional[np.ndarray] = None,
                      offset: Union[float, np.ndarray] = 0.0, reset_mask: Optional[np.ndarray] = None,
                      safety: float = 2.0) -> np.ndarray:
    """Bound on |emulator float32 voltage - exact voltage|, per (sample, tick, neuron).

    Derivation. Work in the reference's units: with weight scaling off, the emulator's "chip
    units" are the reference's divided by one positive factor per population (``r*dt/tau``),
    and relative rounding errors do not depend on that factor. The emulator's tick in float32
    (``../shared/design/s2-arithmetic.md``, ``s2emu`` README) with ``I_t`` an exact integer
    sum and ``c`` the constant input per tick (``i_offset``: leak and bias)::

        v_pre = fl(fl(fl(alpha) * v_{t-1}) + I_t) + fl(c);  spike if v_pre > fl(theta)
        v_t   = fl(v_pre - fl(theta)) on a spike (reset by subtraction) | v_reset (exact)

    With ``u = 2**-24`` (float32 round to nearest), each rounding moves its result by at most
    ``u`` times the result's magnitude:

    1. ``fl(alpha)``: ``|alpha - fl(alpha)| * |v_{t-1}| <= u |v_{t-1}|`` (alpha <= 1);
    2. the product: ``<= u |v_{t-1}|``;
    3. ``+ I_t``: ``<= u |v_pre - c| <= u (|v_pre| + |c|)``;
    4. ``fl(c)`` and ``+ c``: ``<= u |c| + u |v_pre|``;
    5. the reset by subtraction: ``<= u |v_pre - theta| <= u (|v_pre| + |theta|)``.

    An error carried in is multiplied by ``alpha <= 1``, never amplified, so the errors add up::

        e_t <= u * (|theta| + sum_{s <= t} m_s),   m_s = 2|v_{s-1}| + 3|v_pre,s| + 2|c| + |theta|

    summed since the last reset to an exact value (``reset_mask``); the leading ``|theta|`` is
    the threshold's own rounding. The float64 reference's error (~2**-53 relative) and the
    use of the reference's voltages as magnitudes (the two runs agree to within this bound
    until their first differing decision, where the rule stops trusting either) are covered
    by ``safety`` (default 2). Not covered: CubaLIF's synaptic current adds float32 roundings
    of its own that this bound does not carry (the safety factor is the only margin there).

    Args:
        v_pre: reference pre-reset voltage, (batch, time, neurons) float.
        threshold: (neurons,) or broadcastable threshold in the same units.
        v_prev: the voltage each tick starts from, (batch, time, neurons); None -> ``v_pre``
            shifted by one tick (an over-estimate after a reset by subtraction).
        offset: |c| per neuron (broadcastable), the constant input per tick in these units.
        reset_mask: (batch, time, neurons) bool, True where a reset to an exact value (v_reset)
            happened: the accumulated error restarts after that tick. None -> never.
        safety: factor on the whole bound.

    Returns:
        eps, (batch, time, neurons) float64.
    """
    vp = np.abs(np.asarray(v_pre, dtype=np.float64))
    if v_prev is None:
        prev = np.concatenate([np.zeros_like(vp[:, :1]), vp[:, :-1]], axis=1)
    else:
        prev = np.abs(np.asarray(v_prev, dtype=np.float64))
    theta = np.abs(np.asarray(threshold, dtype=np.float64))
    c = np.abs(np.asarray(offset, dtype=np.float64))
    mag = 2.0 * prev + 3.0 * vp + 2.0 * c + theta
    if reset_mask is None:
        acc = np.cumsum(mag, axis=1)
    else:
        acc = np.empty_like(mag)
        run = np.zeros(mag.shape[0:1] + mag.shape[2:])
        for t in range(mag.shape[1]):
            run = run + mag[:, t]
            acc[:, t] = run
            run = np.where(reset_mask[:, t], 0.0, run)
    return safety * U32 * (acc + theta)


def ambiguity_mask(
    reference: Recording,
    thresholds: Mapping[str, Union[float, np.ndarray]],
    *,
    reset: Union[str, Mapping[str, str]] = "subtract",
    offsets: Optional[Mapping[str, Union[float, np.ndarray]]] = None,
    safety: float = 2.0,
    eps: Optional[float] = None,
) -> Dict[str, np.ndarray]:
    """Where the reference's spike decision is within rounding of the threshold.

    A decision at (sample, tick, neuron) is *ambiguous* when ``|v_pre - theta| <= eps`` with
    ``v_pre`` the reference's pre-reset voltage and ``eps`` from :func:`ambiguity_epsilon`
    (or the fixed ``eps`` given). The reference records voltages after reset, so:

    * ``reset="subtract"``: ``v_pre = v + theta * spike`` (exact up to float64 rounding);
    * ``reset="to_v_reset"`` (reset to zero): without a spike ``v_pre = v``; at a spike the
      pre-reset value is lost, so those decisions count as clear (not ambiguous). Near-misses
      (no spike, v just below theta) are still found.

    Args:
        reference: the float reference recording; needs ``"spikes"`` and ``"v"`` of a node for
            that node to get a mask (nodes without ``"v"`` get none: compared exactly).
        thresholds: ``{node: theta}`` in the reference's units (for a quantized graph: the
            graph's ``v_threshold``; see :func:`thresholds_from_graph`).
        reset: one mode for all nodes or ``{node: mode}``.
        offsets: ``{node: |c|}``, the constant input per tick (see :func:`offsets_from_graph`);
            missing nodes: 0.
        eps: a fixed tolerance instead of the bound.

    Returns:
        ``{node: bool array (batch, time, *shape)}``.
    """
    masks: Dict[str, np.ndarray] = {}
    for node, theta in thresholds.items():
        spikes = reference.get(node, "spikes")
        v = reference.get(node, "v")
        if spikes is None or v is None:
            continue
        shape = spikes.shape
        b, t = shape[:2]
        s = np.asarray(spikes, dtype=bool).reshape(b, t, -1)
        vf = np.asarray(v, dtype=np.float64).reshape(b, t, -1)
        th = np.broadcast_to(np.asarray(theta, dtype=np.float64).reshape(-1), (s.shape[2],))
        mode = reset if isinstance(reset, str) else reset.get(node, "subtract")
        if mode == "subtract":
            v_pre = vf + th * s
            known = np.ones_like(s)
            reset_mask = None
        elif mode in ("to_v_reset", "zero"):
            v_pre = vf
            known = ~s
            reset_mask = s
        else:
            raise ValueError(f"reset must be 'subtract' or 'to_v_reset', got {mode!r}")
        v_prev = np.concatenate([np.zeros_like(vf[:, :1]), vf[:, :-1]], axis=1)
        c = 0.0 if offsets is None or node not in offsets else np.asarray(offsets[node], dtype=np.float64).reshape(-1)
        e = np.full(vf.shape, float(eps)) if eps is not None else ambiguity_epsilon(
            v_pre, th, v_prev=v_prev, offset=c, reset_mask=reset_mask, safety=safety)
        masks[node] = (known & (np.abs(v_pre - th) <= e)).reshape(shape)
    return masks


def classify_spike_trains(
    expected: Recording,
    actual: Recording,
    ambiguous: Mapping[str, np.ndarray],
    *,
    nodes: Optional[Sequence[str]] = None,
    time_shift: int = 0,
    output_node: Optional[str] = None,
    order: Optional[Sequence[str]] = None,
) -> SpikeTrainReport:
    """Classify each (sample, neuron) spike train as identical, ambiguous or unexplained.

    The rule, per sample ``b``: let ``s_b`` be the earliest ambiguous tick of any neuron of any
    compared node in that sample, and ``s_bn`` the earliest ambiguous tick of the neuron
    itself. A train that differs first at tick ``t`` is *ambiguous* (explained) if
    ``t >= s_bn`` (the neuron's own decision was a coin flip) or ``t >= s_b + 1`` (a coin
    flip elsewhere can reach any neuron one tick later at the earliest: one tick of latency
    per projection); otherwise it is *unexplained*. Nodes without a mask are compared
    exactly (every difference is unexplained unless another node's ambiguity explains it).

    Ticks are in the expected recording's time base; ``ambiguous`` masks are on ``expected``.
    """
    from .metrics import predict

    names = list(nodes) if nodes is not None else [n for n in expected.nodes
                                                  if expected.get(n, "spikes") is not None
                                                  and actual.get(n, "spikes") is not None]
    rep = SpikeTrainReport()
    aligned = {}
    big = np.iinfo(np.int64).max // 4
    t_sample = None
    for node in names:
        e, a, t0 = _align(node, "spikes", np.asarray(expected.spikes(node)), np.asarray(actual.spikes(node)),
                          time_shift)
        b, t = e.shape[:2]
        m = ambiguous.get(node)
        if m is not None:
            m = np.asarray(m, dtype=bool)
            if m.shape != expected.spikes(node).shape:
                raise RecordingMismatchError(f"ambiguity mask shape {m.shape} differs from the spikes "
                                             f"{expected.spikes(node).shape}", node=node)
            m = m[:, t0:t0 + t].reshape(b, t, -1)
            first_amb = np.where(m.any(axis=1), np.argmax(m, axis=1), big)  # (b, n), aligned ticks
        else:
            first_amb = np.full((b, int(np.prod(e.shape[2:], dtype=np.int64))), big)
        aligned[node] = (e.reshape(b, t, -1).astype(bool), a.reshape(b, t, -1).astype(bool), t0, first_amb)
        node_first = first_amb.min(axis=1)
        t_sample = node_first if t_sample is None else np.minimum(t_sample, node_first)
    rank = {n: i for i, n in enumerate(_node_order(expected, actual, order))}
    best = None
    for node in names:
        e, a, t0, first_amb = aligned[node]
        diff = e != a
        differs = diff.any(axis=1)  # (b, n)
        first_diff = np.where(differs, np.argmax(diff, axis=1), big)
        explain_from = np.minimum(first_amb, (t_sample + 1)[:, None])
        amb = differs & (first_diff >= explain_from)
        unexp = differs & ~amb
        n_trains = int(differs.size)
        counts = {"trains": n_trains, "identical": int((~differs).sum()), "ambiguous": int(amb.sum()),
                  "unexplained": int(unexp.sum())}
        rep.per_node[node] = counts
        rep.trains += counts["trains"]
        rep.identical += counts["identical"]
        rep.ambiguous += counts["ambiguous"]
        rep.unexplained += counts["unexplained"]
        if counts["unexplained"]:
            ft = np.where(unexp, first_diff, big)
            tick = int(ft.min())
            sample, neuron = (int(x) for x in np.argwhere(ft == tick)[0])
            key = divergence_key(tick, rank.get(node, len(rank)), sample, neuron)
            if best is None or key < best[0]:
                shape = expected.spikes(node).shape[2:]
                best = (key, Divergence(node, neuron, _unravel(neuron, shape), tick + t0, sample, "spikes",
                                        int(e[sample, tick, neuron]), int(a[sample, tick, neuron])))
    rep.first_unexplained = None if best is None else best[1]
    out = output_node if output_node is not None else next(
        (n for n in reversed(_node_order(expected, actual, order)) if n in names), None)
    if out is not None and out in aligned:
        e, a, _, _ = aligned[out]
        rep.output_node = out
        pe = predict(Recording(dt=expected.dt, data={out: {"spikes": e}}), out)
        pa = predict(Recording(dt=actual.dt, data={out: {"spikes": a}}), out)
        rep.predictions_identical = float(np.mean(pe == pa)) if len(pe) else 1.0
    return rep


def thresholds_from_graph(graph: Any) -> Dict[str, np.ndarray]:
    """``{neuron node: v_threshold (flat)}`` of a NIR graph (or FlatGraph, or path), in its units."""
    flat = as_flat(graph)
    out = {}
    for name, node in flat.nodes.items():
        th = getattr(node, "v_threshold", None)
        if th is not None:
            out[name] = np.asarray(th, dtype=np.float64).reshape(-1)
    return out


def offsets_from_graph(graph: Any, dt: float = 1e-4, integrator: str = "euler") -> Dict[str, np.ndarray]:
    """``{neuron node: |c|}``: the constant input per tick (leak and bias) in the reference's units.

    For the ``spinnaker2`` preset's update ``v = a*v + g*(v_leak + r*x)`` (LIF, ``g = dt/tau``
    for Euler, ``1 - exp(-dt/tau)`` for exp), ``x`` including the biases of the Affine/Conv
    nodes feeding the neuron: ``|c| <= |g*v_leak| + |g*r*bias|``; IF (``v += r*x``):
    ``|r*bias|``; CubaLIF: the same as LIF with ``tau_mem`` and ``r*w_in`` (an over-estimate).
    """
    flat = as_flat(graph)
    out: Dict[str, np.ndarray] = {}
    for name, node in flat.nodes.items():
        typ = type(node).__name__
        if typ not in ("LIF", "IF", "CubaLIF"):
            continue
        shape = flat.out_shape[name]
        bias = np.zeros(shape)
        for pred in flat.predecessors(name):
            pn = flat.nodes[pred]
            b = getattr(pn, "bias", None)
            if type(pn).__name__ not in ("Affine", "Conv1d", "Conv2d") or b is None:
                continue
            b = np.abs(np.asarray(b, dtype=np.float64))
            if b.ndim == 1 and len(shape) > 1:
                b = b.reshape(-1, *([1] * (len(shape) - 1)))
            bias = bias + np.broadcast_to(b, shape)
        r = np.abs(np.asarray(node.r, dtype=np.float64))
        if typ == "IF":
            c = r * bias
        else:
            tau = np.asarray(node.tau if typ == "LIF" else node.tau_mem, dtype=np.float64)
            g = dt / tau if integrator == "euler" else 1.0 - np.exp(-dt / tau)
            gain = r * (np.abs(np.asarray(node.w_in, dtype=np.float64)) if typ == "CubaLIF" else 1.0)
            c = np.abs(g * np.asarray(node.v_leak, dtype=np.float64)) + np.abs(g * gain) * bias
        out[name] = np.broadcast_to(c, shape).reshape(-1)
    return out


def divergence_key(tick: int, layer_rank: int, sample: int, neuron: int) -> Tuple[int, int, int, int]:
    """The order of divergences, the one definition s2gate uses: the earliest tick first, then the
    lowest layer (rank in the graph's topological order), then the lowest sample, then the lowest
    flat neuron index. "The first divergence" is the minimum of this key; since it is a total
    order on integers, the minimum over batches (or shards) does not depend on their order."""
    return (int(tick), int(layer_rank), int(sample), int(neuron))


def tally_trains(expected: Recording, actual: Recording, nodes: Sequence[str]) -> Tuple[int, int]:
    """(spike trains, trains that differ) over ``nodes``: a train is one neuron of one sample over
    all ticks both recordings have (tier: exact, no ambiguity rule)."""
    trains = differ = 0
    for node in nodes:
        e = np.asarray(expected.spikes(node))
        a = np.asarray(actual.spikes(node))
        b = e.shape[0]
        e = e.reshape(b, e.shape[1], -1)
        a = a.reshape(a.shape[0], a.shape[1], -1)
        t = min(e.shape[1], a.shape[1])
        trains += b * e.shape[2]
        differ += int((e[:, :t] != a[:, :t]).any(axis=1).sum())
    return trains, differ


def check_equivalence(
    reference: Recording,
    actual: Recording,
    graph: Any,
    *,
    reset: Union[None, str, Mapping[str, str]] = None,
    output_node: Optional[str] = None,
    time_shift: int = 0,
    nodes: Optional[Sequence[str]] = None,
    safety: float = 2.0,
) -> Comparison:
    """Emulator (or board) spikes against the float reference on the same quantized ``graph``.

    Builds the ambiguity mask from the reference's voltages and the graph's thresholds, and
    compares spikes only (voltages are in different units on the two sides). ``reset`` is the
    reset mode the reference ran with (None: read from ``reference.meta["options"]``, else
    ``"subtract"``, the ``spinnaker2`` preset's). The result's ``trains`` holds the shares of identical,
    ambiguous and unexplained spike trains and of identical predictions; ``ok`` is True when
    nothing is unexplained; ``describe()`` names the first unexplained divergence.
    """
    flat = as_flat(graph)
    thresholds = thresholds_from_graph(flat)
    opts = reference.meta.get("options") or {}
    if reset is None:
        reset = opts.get("reset", "subtract")
    offsets = offsets_from_graph(flat, dt=float(opts.get("dt", reference.dt or 1e-4)),
                                 integrator=opts.get("integrator", "euler"))
    mask = ambiguity_mask(reference, thresholds, reset=reset, offsets=offsets, safety=safety)
    if nodes is None:
        nodes = [n for n in reference.nodes if reference.get(n, "spikes") is not None
                 and actual.get(n, "spikes") is not None and n in thresholds]
    nodes = sorted(nodes, key=lambda n: flat.order.index(n) if n in flat.order else len(flat.order))
    if output_node is None:
        output_node = _output_population(flat, nodes)
    return compare_recordings(reference, actual, nodes=nodes, observables=("spikes",), time_shift=time_shift,
                              ambiguous=mask, output_node=output_node, order=flat.order)


def _output_population(graph: Any, nodes: Sequence[str]) -> Optional[str]:
    """The neuron population feeding the graph's Output (the first one in ``nodes``), if any.

    The walk is :func:`s2common.graph.feeding_populations` from every Output node, restricted to ``nodes``
    (the recorded ones) and stopping at spiking neurons (those with a ``v_threshold``): a recorded node ends
    the walk and counts; an unrecorded spiking neuron ends it without counting; an LI, I or CubaLI readout
    is walked through. None when the graph does not load.
    """
    try:
        flat = as_flat(graph)
    except S2GateError:
        return None
    feeding = set(feeding_populations(flat, among=nodes, kinds=THRESHOLD_NEURON_TYPES))
    for n in nodes:
        if n in feeding:
            return n
    return None
