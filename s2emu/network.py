"""The lowered SpiNNaker2 network: what the chip would be programmed with.

A quantized (or float) NIR graph is lowered (``s2emu.lowering``) into populations with
an S2 neuron model and float32 parameters, and projections with int8 weights. The two
engines (golden and fast), the design rules and the chip model all read this structure.

Shapes: a population's ``shape`` is its NIR node shape (no batch, no time), e.g.
``(C, H, W)`` after a Conv2d or ``(N,)`` after an Affine; ``size`` is its product.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

#: S2 neuron models, as py-spinnaker2 names them.
S2_MODELS = ("spike_list", "lif_no_delay", "lif", "lif_conv2d", "lif_curr_exp_no_delay")


@dataclass(frozen=True)
class ConversionOptions:
    """How a NIR graph is lowered; defaults are s2gate's (dt 1e-4, forward Euler, reset by subtraction,
    conn_delay 0, weight scaling on: the NIR paper's Braille run; its CNN and LIF runs reset to zero, and
    ConversionConfig's own defaults differ again: see ``s2emu.profiles`` and s2emu/README.md).

    Attributes:
        dt: tick in seconds.
        integrator: ``"euler"`` (forward Euler, alpha = 1 - dt/tau) or ``"exp"`` (alpha = exp(-dt/tau)).
        reset: ``"subtract"`` (reset by subtraction) or ``"to_v_reset"`` (reset to v_reset = 0).
        conn_delay: extra synaptic delay in ticks on every dense/pool projection (the model stays
            ``lif_no_delay``; the converter writes the delay into the connection list; conv
            projections must have 0). See ``dense_delay``.
        scale_weights: derive a weight scale per population (``127 / percentile_p(|W|)``); off for
            graphs whose weights are already integers (after s2gate's quantizer or QAT).
        percentile: the percentile ``p`` used when ``scale_weights`` is on.
        max_atoms_per_core: neurons per PE, per S2 model.
        fused_multiply_add: float32 order switch for ``alpha * v + I`` (see ``s2emu`` docs):
            False: ``fl32(fl32(alpha*v) + I) + i_offset`` (separate multiply and adds, default);
            True: ``fl32(alpha*v + I)`` rounded once, then ``+ i_offset``.
        vendor_cast: with ``scale_weights`` off, cast non-integer float weights to int8 the way
            py-spinnaker2 does (truncation toward zero) instead of rejecting them; this is what
            the NIR paper's ``lif_spinnaker2.py`` relied on (weight 102.02 -> 102). Off by default:
            a quantized graph must carry integer weights.
        dense_delay: what ``lif_no_delay`` / ``lif_curr_exp_no_delay`` do with the delay the
            converter writes into a dense (or pool) connection list when ``conn_delay > 0``
            (``create_projection``: ``connection_list_from_dense_weights(W.T * w_scale, delay)``):
            ``"honoured"`` (default: the source passes the delay, so it is meant to act; spikes
            arrive at ``t + 1 + conn_delay``) or ``"ignored"`` (the model has no delay buffer;
            arrival at ``t + 1``). py-spinnaker2's C code is not public [inf].
        scale_dtype: precision of ``W * w_scale`` before the int8 cast: ``"float64"`` (default:
            numpy 2 / NEP 50, a float32 array times a numpy float64 scalar is float64; the
            converter's ``w_scale = 127.0 / max_abs_weight`` is a numpy float64) or ``"float32"``
            (numpy 1.x value-based casting kept float32 arrays float32). Which numpy py-spinnaker2
            runs under is not public; ``s2emu.lowering.scale_dtype_changes`` reports the weights
            the choice changes.
        pool_join: how ``SumPool2d -> Flatten -> Affine`` with overlapping windows becomes int8
            (``create_sumpool2d_affine_projection``: ``join_conn_lists(sumpool2d_conns,
            affine_conns)``, not public): ``"per_path"`` (default: one synapse per pool window,
            each cast separately; = pooled counts times int8 weights) or ``"summed"`` (the
            joined float weights of a (pre, post) pair are summed, then cast once). Both agree
            when every input pixel lies in one window.
    """

    dt: float = 1e-4
    integrator: str = "euler"
    reset: str = "subtract"
    conn_delay: int = 0
    scale_weights: bool = True
    percentile: float = 100.0
    max_atoms_per_core: Tuple[Tuple[str, int], ...] = (
        ("spike_list", 500),
        ("lif_no_delay", 250),
        ("lif", 250),
        ("lif_conv2d", 256),
        ("lif_curr_exp_no_delay", 250),
    )
    fused_multiply_add: bool = False
    vendor_cast: bool = False
    dense_delay: str = "honoured"
    scale_dtype: str = "float64"
    pool_join: str = "per_path"

    def atoms_per_core(self, model: str) -> int:
        return dict(self.max_atoms_per_core)[model]


@dataclass
class Population:
    """One NIR neuron node (or the Input) on the chip.

    Attributes:
        name: the NIR node's (dotted) name.
        model: one of :data:`S2_MODELS`.
        shape: NIR shape of the node (no batch/time); ``size`` = prod(shape).
        threshold, alpha_decay, i_offset, v_reset: float32 arrays of shape (size,); None for spike_list.
        exc_decay, inh_decay: float32 (size,) for ``lif_curr_exp_no_delay``, else None.
        reset: ``"subtract"`` or ``"to_v_reset"``.
        w_scale: the weight scale applied to all incoming weights (1.0 if scaling was off).
        nir_type: the NIR node type it came from ("LIF", "IF", "CubaLIF", "Input").
        v_scale: float64 (size,): chip voltage units per NIR volt, the converter's ``nir_v_scale``
            (``convert_LIF`` returns ``scale = w_scale / r_factor``; ``convert_IF``
            ``w_scale / r``; ``convert_CubaLIF`` ``w_scale / (r_factor * w_in_factor)``): a recorded
            chip voltage ``v`` is ``v / v_scale`` volts. None for spike_list.
    """

    name: str
    model: str
    shape: Tuple[int, ...]
    threshold: Optional[np.ndarray] = None
    alpha_decay: Optional[np.ndarray] = None
    i_offset: Optional[np.ndarray] = None
    v_reset: Optional[np.ndarray] = None
    exc_decay: Optional[np.ndarray] = None
    inh_decay: Optional[np.ndarray] = None
    reset: str = "subtract"
    w_scale: float = 1.0
    nir_type: str = ""
    v_scale: Optional[np.ndarray] = None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class Projection:
    """Synapses from one population to another, with int8 weights and one tick of latency.

    ``kind``:
      * ``"dense"``: ``weight`` int8 (post.size, n_in) where n_in is the size of the pre
        population after ``pool`` (sum pooling with kernel ``pool``, stride ``pool_stride``
        (None: = kernel), zero padding ``pool_padding``, floor) and flattening in C order.
      * ``"conv2d"``: ``weight`` int8 (C_out, C_in/groups, kh, kw); the pre spike map
        (C, H, W) is sum-pooled by ``pool`` first (if set), then convolved with ``stride``,
        ``padding``, ``dilation``, ``groups``.
      * ``"pool"``: no weights; the pre map is sum-pooled by ``pool`` and the counts are the input.

    Attributes:
        delay: extra ticks beyond the one-tick latency (``conn_delay``).
        nir_nodes: the NIR nodes this projection was made from (for messages).
        recurrent: True if it came from a back-edge of the NIR graph.
    """

    name: str
    pre: str
    post: str
    kind: str
    weight: Optional[np.ndarray] = None
    pool: Optional[Tuple[int, int]] = None
    pool_stride: Optional[Tuple[int, int]] = None
    pool_padding: Tuple[int, int] = (0, 0)
    stride: Tuple[int, int] = (1, 1)
    padding: Tuple[int, int] = (0, 0)
    dilation: Tuple[int, int] = (1, 1)
    groups: int = 1
    delay: int = 0
    nir_nodes: List[str] = field(default_factory=list)
    recurrent: bool = False


@dataclass
class S2Network:
    """A lowered network: populations in topological order and projections between them.

    Attributes:
        populations: name -> Population, the Input's spike_list first.
        projections: all projections (feed-forward and recurrent).
        input_name: the first spike_list population (the only one in most graphs).
        input_names: every Input's spike_list population (the converter makes one per Input), in
            the graph's sorted order; empty means ``[input_name]``.
        output_names: populations whose spikes feed the graph's Output node(s).
        options: the conversion options used.
        source: file the graph came from, if any (for messages).
    """

    populations: Dict[str, Population]
    projections: List[Projection]
    input_name: str
    output_names: List[str]
    options: ConversionOptions
    source: Optional[str] = None
    input_names: List[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.input_names:
            self.input_names = [self.input_name]

    def voltage_scales(self) -> Dict[str, np.ndarray]:
        """Per neuron population: chip voltage units per NIR volt (``nir_v_scale``), float64 (size,)."""
        return {n: p.v_scale for n, p in self.populations.items() if p.v_scale is not None}


@dataclass(frozen=True)
class RuleViolation:
    """One failed design rule.

    Attributes:
        rule: the rule's name (e.g. ``"weight-int8-range"``), from ``s2emu.rules.RULES``.
        node: the NIR node or edge (``"a -> b"``) it concerns.
        message: what is wrong, one sentence.
        hint: what to do about it, one line.
        severity: ``"error"`` (cannot run / would differ on chip) or ``"warning"``.
    """

    rule: str
    node: str
    message: str
    hint: str = ""
    severity: str = "error"

    def one_line(self) -> str:
        text = f"[{self.rule}] node '{self.node}': {self.message}"
        return text + (f" (hint: {self.hint})" if self.hint else "")
