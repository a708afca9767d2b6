"""Chip model: how a lowered :class:`~s2emu.network.S2Network` fills SpiNNaker2 PEs and chips.

Counted in the blocks a PE allocates (in the spirit of Sinabs' DynapCNN ``memory_summary``
and Rockpool's Xylo mapper): every population is split over PEs by ``max_atoms_per_core``
(py-spinnaker2's ``Population.set_max_atoms_per_core``; defaults from
:class:`~s2emu.network.ConversionOptions`, per population overrides as the NIR paper's CNN
used: ``{"3": 256, "6": 128, "10": 16}``, GitHub ``neuromorphs/NIR`` ``paper/02_cnn/s2_apply.ipynb``),
and each PE's data SRAM is filled as below. All sizes in bytes.

The chip [src/secondary]: 152 ARM Cortex-M4F PEs per chip, about 148 usable by applications,
128 KiB SRAM per PE of which 32 KiB instruction and 96 KiB data memory (the linker script of
NESTML's SpiNNaker2 target, GitHub ``nest/nestml``
``pynestml/codegeneration/resources_spinnaker2/qpe.ld.jinja2``: ``ITCM 32K``, ``DTCM 96K``).

What one PE holding ``n`` atoms of a population stores (py-spinnaker2's own C code is not
public; where a layout is inferred it is marked [inf]):

* **Synapse rows** (``dense`` and ``pool`` projections into ``lif_no_delay``, ``lif``,
  ``lif_curr_exp_no_delay``): one row per presynaptic neuron that has a target on the PE,
  a 3-word (12 B) row header and one 16-bit synapse word per synapse, the row padded to
  whole 32-bit words. Source: NESTML's SpiNNaker2 synapse code (``synapse_row.h.jinja2``:
  ``N_SYNAPSE_ROW_HEADER_WORDS 3``; 4-bit weight, 3-bit delay, 1-bit type, 8-bit index;
  ``synapses.c.jinja2`` reads the words as ``uint16_t``). For ``lif_no_delay`` the word
  holds an 8-bit weight and an 8-bit target [inf]. Rows are dense (every pre x post pair,
  zero weights included), so the count depends on shapes only.
  - ``dense``: rows = presynaptic neurons (``pre.size``; after ``SumPool2d -> Flatten``
    the converter joins the pooling and the Affine into one connection list, so every
    pre-pool neuron inside a pooling window gets a full row: ``n_in * ph * pw`` rows),
    ``n`` synapses per row.
  - ``pool`` (``SumPool2d -> neuron``): the converter's pooling connection list; each post
    atom has ``ph * pw`` presynaptic neurons, one synapse (weight 1) per row.
* **Conv kernels** (``lif_conv2d``): the int8 kernel ``(C_out, C_in/groups, kh, kw)`` is
  stored once on every PE of the post population (the full kernel: an upper bound, since a
  PE holding some output channels needs only theirs) [inf], padded to 32-bit words.
* **Neuron parameters**: float32 per neuron per parameter, not shared [inf]:
  threshold, alpha_decay, i_offset, v_reset (4) for the lif models; plus exc_decay,
  inh_decay (6) for ``lif_curr_exp_no_delay``; none for ``spike_list``.
* **State**: float32 ``v`` per neuron; ``lif_curr_exp_no_delay`` also ``I_exc``, ``I_inh``.
* **Buffers**: int32 input accumulators per neuron: 2 slots (this tick / next tick) for
  ``lif_no_delay`` and ``lif_conv2d``; 8 delay slots x 2 synapse types for ``lif``
  (3-bit delay, 1-bit type: NESTML's ring buffer index, ``RING_BUFFER_SIZE = 1 << (3 + 1 + 8)``
  32-bit entries for 256 atoms, ``param_defs.h.jinja2``); 2 slots x 2 types (exc, inh) for
  ``lif_curr_exp_no_delay`` [inf]. An output spike record of ``(n + 31) / 32 + 2`` words
  (NESTML ``SPIKE_RECORD_LENGTH``: the bitmap plus 2 header words).
  ``lif_conv2d``: the pooled input spike map of each conv projection as int8 counts
  (``C_in * H/ph * W/pw``, whole words) for the MLA [inf]. ``spike_list``: ``input_ticks``
  spike records of its atoms (1 = streamed tick by tick).

Weights are counted twice: ``weight_bytes_int8`` (1 B per weight; 4 bits for ``lif``) and
``weight_bytes_float32`` (4 B per weight, same layout) so that the reduction shows. Totals and
the fit test use the int8 layout; ``total_bytes_float32`` swaps the weight bytes only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

from .network import ConversionOptions, Population, Projection, S2Network

#: bytes of a synapse row header (3 words; NESTML ``N_SYNAPSE_ROW_HEADER_WORDS``).
ROW_HEADER_BYTES = 12
#: bits of one synapse word in a row.
SYNAPSE_WORD_BITS = 16
#: bits of the weight inside a synapse word, per S2 model (``lif``: 4-bit weights).
WEIGHT_BITS = {"lif_no_delay": 8, "lif": 4, "lif_conv2d": 8, "lif_curr_exp_no_delay": 8, "spike_list": 8}
#: float32 parameters per neuron.
PARAMS_PER_NEURON = {"spike_list": 0, "lif_no_delay": 4, "lif": 4, "lif_conv2d": 4, "lif_curr_exp_no_delay": 6}
#: float32 state words per neuron.
STATE_PER_NEURON = {"spike_list": 0, "lif_no_delay": 1, "lif": 1, "lif_conv2d": 1, "lif_curr_exp_no_delay": 3}
#: header words of a spike record (NESTML ``SPIKE_RECORD_LENGTH = (N + 31) / 32 + 2``).
SPIKE_RECORD_HEADER_BYTES = 8
#: int32 input accumulator slots per neuron.
INPUT_SLOTS_PER_NEURON = {"spike_list": 0, "lif_no_delay": 2, "lif": 16, "lif_conv2d": 2, "lif_curr_exp_no_delay": 4}


def _words(nbytes: float) -> int:
    """Round a byte count up to whole 32-bit words (in bytes)."""
    return 4 * int(math.ceil(nbytes / 4))


@dataclass(frozen=True)
class ChipSpec:
    """The hardware the map targets (bytes, counts).

    Attributes:
        sram_per_pe: SRAM of one PE (instruction + data).
        data_sram_per_pe: the part that holds weights, parameters, state and buffers.
        pes_per_chip: PEs on a chip.
        usable_pes_per_chip: PEs available to applications (the rest run the system).
        chips_per_board: chips on a 48-node board.
    """

    sram_per_pe: int = 128 * 1024
    data_sram_per_pe: int = 96 * 1024
    pes_per_chip: int = 152
    usable_pes_per_chip: int = 148
    chips_per_board: int = 48


@dataclass
class PEAlloc:
    """One PE: atoms ``[start, stop)`` of a population and its bytes by kind."""

    population: str
    model: str
    index: int
    start: int
    stop: int
    weights: int = 0
    weight_bytes_int8: int = 0
    weight_bytes_float32: int = 0
    synapse_bytes: int = 0
    param_bytes: int = 0
    state_bytes: int = 0
    buffer_bytes: int = 0
    row_bytes: int = 0
    dram_bytes: int = 0

    @property
    def atoms(self) -> int:
        return self.stop - self.start

    @property
    def total_bytes(self) -> int:
        """Data SRAM used with int8 weights (synapse overhead = row headers + index bits + padding)."""
        return self.weight_bytes_int8 + self.synapse_bytes + self.param_bytes + self.state_bytes + self.buffer_bytes

    @property
    def total_bytes_float32(self) -> int:
        return self.total_bytes - self.weight_bytes_int8 + self.weight_bytes_float32

    @property
    def sram_bytes(self) -> int:
        """Data SRAM used: ``total_bytes`` less the synapse rows kept in DRAM (``dram_rows``)."""
        return self.total_bytes - self.dram_bytes


@dataclass
class LayerRow:
    """One population on the chip, summed over its PEs (bytes)."""

    name: str
    model: str
    neurons: int
    atoms_per_core: int
    pes: int
    weights: int
    weight_bytes_float32: int
    weight_bytes_int8: int
    synapse_bytes: int
    param_bytes: int
    state_bytes: int
    buffer_bytes: int
    total_bytes: int
    total_bytes_float32: int
    max_bytes_per_pe: int
    fits: bool
    dram_bytes: int = 0


@dataclass
class ChipTotal:
    """The whole network: sums of the layer rows, PEs, chips and 48-chip boards needed."""

    neurons: int
    pes: int
    chips: int
    weights: int
    weight_bytes_float32: int
    weight_bytes_int8: int
    synapse_bytes: int
    param_bytes: int
    state_bytes: int
    buffer_bytes: int
    total_bytes: int
    total_bytes_float32: int
    max_bytes_per_pe: int
    max_chips: int
    fits: bool
    boards: int = 1
    dram_bytes: int = 0


@dataclass
class ChipMap:
    """Result of :func:`map_to_chip`: ``rows`` per population (topological order), ``total``, per-PE ``pes``."""

    rows: List[LayerRow]
    total: ChipTotal
    pes: List[PEAlloc]
    spec: ChipSpec = field(default_factory=ChipSpec)

    def row(self, name: str) -> LayerRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)


@dataclass
class LayerMemory:
    """Per-layer memory for the quantizer's account (bytes, summed over the layer's PEs).

    ``weights`` counts weights as stored on the chip (a conv kernel once per PE, dense rows
    expanded by pooling); ``unique_weights`` counts the network's own weight values.
    """

    name: str
    neurons: int
    weights: int
    weight_bytes_int8: int
    weight_bytes_float32: int
    param_bytes: int
    state_bytes: int
    unique_weights: int = 0


def atoms_for(pop: Population, options: ConversionOptions, overrides: Optional[Mapping[str, int]] = None) -> int:
    """Atoms per core of ``pop``: a per-population override, else the options' per-model value."""
    if overrides and pop.name in overrides:
        n = int(overrides[pop.name])
    else:
        n = int(options.atoms_per_core(pop.model))
    if n < 1:
        raise ValueError(f"max_atoms_per_core must be >= 1 for population {pop.name!r}, got {n}")
    return n


def _pooled_shape(pre: Population, pool: Optional[Tuple[int, int]]) -> Tuple[int, ...]:
    if not pool:
        return tuple(pre.shape)
    c, h, w = pre.shape
    return (c, h // pool[0], w // pool[1])


def _pool_area(pool: Optional[Tuple[int, int]]) -> int:
    return 1 if not pool else int(pool[0]) * int(pool[1])


def _synapse_rows(pe: PEAlloc, rows: int, per_row: int, weight_bits: int) -> None:
    """Add ``rows`` synapse rows of ``per_row`` synapses each to ``pe``."""
    if rows <= 0 or per_row <= 0:
        return
    n_syn = rows * per_row
    row_bytes = ROW_HEADER_BYTES + _words(per_row * SYNAPSE_WORD_BITS / 8)
    w_int8 = int(math.ceil(n_syn * weight_bits / 8))
    pe.weights += n_syn
    pe.weight_bytes_int8 += w_int8
    pe.weight_bytes_float32 += 4 * n_syn
    pe.synapse_bytes += rows * row_bytes - w_int8
    pe.row_bytes += rows * row_bytes


def _fill_pe(pe: PEAlloc, pop: Population, incoming: List[Projection], net: S2Network, input_ticks: int) -> None:
    n = pe.atoms
    model = pop.model
    pe.param_bytes = 4 * PARAMS_PER_NEURON[model] * n
    pe.state_bytes = 4 * STATE_PER_NEURON[model] * n
    spike_record = _words(n / 8) + SPIKE_RECORD_HEADER_BYTES
    if model == "spike_list":
        pe.buffer_bytes = max(1, int(input_ticks)) * spike_record
        return
    pe.buffer_bytes = 4 * INPUT_SLOTS_PER_NEURON[model] * n + spike_record
    for proj in incoming:
        pre = net.populations[proj.pre]
        if proj.kind == "conv2d":
            k = int(proj.weight.size)
            pe.weights += k
            pe.weight_bytes_int8 += _words(k * WEIGHT_BITS[model] / 8)
            pe.weight_bytes_float32 += 4 * k
            pooled = _pooled_shape(pre, proj.pool)
            pe.buffer_bytes += _words(math.prod(pooled))
        elif proj.kind == "dense":
            n_in = int(proj.weight.shape[1]) if proj.weight is not None else math.prod(_pooled_shape(pre, proj.pool))
            _synapse_rows(pe, n_in * _pool_area(proj.pool), n, WEIGHT_BITS[model])
        elif proj.kind == "pool":
            _synapse_rows(pe, n * _pool_area(proj.pool), 1, WEIGHT_BITS[model])
        else:  # pragma: no cover - the lowering makes only these kinds
            raise ValueError(f"unknown projection kind {proj.kind!r} ({proj.name})")


def map_to_chip(net: S2Network, *, sram_per_pe: int = 128 * 1024, data_sram_per_pe: int = 96 * 1024,
                pes_per_chip: int = 152, usable_pes_per_chip: int = 148, max_chips: int = 1,
                atoms_per_core: Optional[Mapping[str, int]] = None, input_ticks: int = 1,
                dram_rows: bool = False) -> ChipMap:
    """Split every population over PEs and count each PE's data SRAM.

    Args:
        net: the lowered network.
        sram_per_pe, data_sram_per_pe, pes_per_chip, usable_pes_per_chip: the hardware (bytes / counts).
        max_chips: chips the deployment may use; ``total.fits`` is False beyond it.
        atoms_per_core: per-population overrides of ``max_atoms_per_core`` (name -> atoms).
        input_ticks: spike bitmaps a ``spike_list`` PE holds (1 = streamed tick by tick).
        dram_rows: a PE whose data does not fit its SRAM keeps its synapse rows (dense and pool
            projections) in the chip's DRAM instead, fetched by DMA per received spike, as
            SpiNNaker1's sPyNNaker keeps synaptic matrices in SDRAM [inf for SpiNNaker2:
            py-spinnaker2's public apps keep rows in SRAM]; ``PEAlloc.dram_bytes`` says how much.
            The multi-chip mapper (:func:`s2emu.board.map_to_board`) turns it on.

    Returns:
        :class:`ChipMap`. A layer ``fits`` when every one of its PEs needs at most
        ``data_sram_per_pe``; the total fits when every layer fits and the PEs fit on
        ``max_chips`` chips of ``usable_pes_per_chip``.
    """
    spec = ChipSpec(sram_per_pe=sram_per_pe, data_sram_per_pe=data_sram_per_pe, pes_per_chip=pes_per_chip,
                    usable_pes_per_chip=usable_pes_per_chip)
    incoming: Dict[str, List[Projection]] = {name: [] for name in net.populations}
    for proj in net.projections:
        incoming[proj.post].append(proj)
    rows: List[LayerRow] = []
    all_pes: List[PEAlloc] = []
    for name, pop in net.populations.items():
        atoms = atoms_for(pop, net.options, atoms_per_core)
        pes = []
        for i, start in enumerate(range(0, pop.size, atoms)):
            pe = PEAlloc(population=name, model=pop.model, index=i, start=start, stop=min(start + atoms, pop.size))
            _fill_pe(pe, pop, incoming[name], net, input_ticks)
            if dram_rows and pe.total_bytes > data_sram_per_pe:
                pe.dram_bytes = pe.row_bytes
            pes.append(pe)
        all_pes.extend(pes)
        max_pe = max((p.sram_bytes for p in pes), default=0)
        rows.append(LayerRow(
            name=name, model=pop.model, neurons=pop.size, atoms_per_core=atoms, pes=len(pes),
            weights=sum(p.weights for p in pes),
            weight_bytes_float32=sum(p.weight_bytes_float32 for p in pes),
            weight_bytes_int8=sum(p.weight_bytes_int8 for p in pes),
            synapse_bytes=sum(p.synapse_bytes for p in pes),
            param_bytes=sum(p.param_bytes for p in pes), state_bytes=sum(p.state_bytes for p in pes),
            buffer_bytes=sum(p.buffer_bytes for p in pes), total_bytes=sum(p.total_bytes for p in pes),
            total_bytes_float32=sum(p.total_bytes_float32 for p in pes), max_bytes_per_pe=max_pe,
            fits=max_pe <= data_sram_per_pe, dram_bytes=sum(p.dram_bytes for p in pes)))
    n_pes = sum(r.pes for r in rows)
    chips = max(1, math.ceil(n_pes / usable_pes_per_chip)) if n_pes else 0
    keys = ("weights", "weight_bytes_float32", "weight_bytes_int8", "synapse_bytes", "param_bytes", "state_bytes",
            "buffer_bytes", "total_bytes", "total_bytes_float32", "dram_bytes")
    sums = {k: sum(getattr(r, k) for r in rows) for k in keys}
    total = ChipTotal(neurons=sum(r.neurons for r in rows), pes=n_pes, chips=chips,
                      max_bytes_per_pe=max((r.max_bytes_per_pe for r in rows), default=0), max_chips=int(max_chips),
                      fits=all(r.fits for r in rows) and chips <= max_chips,
                      boards=math.ceil(chips / spec.chips_per_board) if chips else 0, **sums)
    return ChipMap(rows=rows, total=total, pes=all_pes, spec=spec)


def pe_bytes(net: S2Network, population: str, atoms: int, input_ticks: int = 1) -> int:
    """Data SRAM (bytes) of one PE holding ``atoms`` atoms of ``population`` (the first slice)."""
    pop = net.populations[population]
    incoming = [p for p in net.projections if p.post == population]
    pe = PEAlloc(population=population, model=pop.model, index=0, start=0, stop=min(int(atoms), pop.size))
    _fill_pe(pe, pop, incoming, net, input_ticks)
    return pe.total_bytes


def largest_fitting_atoms(net: S2Network, population: str, data_sram_per_pe: int, upper: int,
                          input_ticks: int = 1) -> int:
    """The largest atoms per core <= ``upper`` whose PE fits ``data_sram_per_pe`` (0 if not even 1 fits)."""
    lo, hi = 0, max(0, int(upper))
    while lo < hi:  # invariant: lo fits (or is 0), hi + 1 does not fit or is beyond upper
        mid = (lo + hi + 1) // 2
        if pe_bytes(net, population, mid, input_ticks) <= data_sram_per_pe:
            lo = mid
        else:
            hi = mid - 1
    return lo


def layer_memory(net: S2Network, *, atoms_per_core: Optional[Mapping[str, int]] = None) -> List[LayerMemory]:
    """Per-layer weight / parameter / state bytes (int8 and float32 weights), as :func:`map_to_chip` counts them.

    One row per population in ``net.populations`` order (the Input's ``spike_list`` included,
    with zeros). ``unique_weights`` is the size of the int8 weight arrays of the incoming projections.
    """
    chip = map_to_chip(net, atoms_per_core=atoms_per_core)
    unique: Dict[str, int] = {name: 0 for name in net.populations}
    for proj in net.projections:
        if proj.weight is not None:
            unique[proj.post] += int(proj.weight.size)
    return [LayerMemory(name=r.name, neurons=r.neurons, weights=r.weights, weight_bytes_int8=r.weight_bytes_int8,
                        weight_bytes_float32=r.weight_bytes_float32, param_bytes=r.param_bytes,
                        state_bytes=r.state_bytes, unique_weights=unique[r.name]) for r in chip.rows]
