"""The 48-chip board: chip placement of PEs, and the spike packets that cross chips and links.

Marks as in ``s2emu/README.md``: [src] read in a public source, [inf] inferred (a parameter).

The board [src/inf]:

* 48 chips per board (the 48-node SpiNNaker2 board, EU project SpiNNode's report on CORDIS,
  project 101112987: "complex multi-chip systems such as the 48-node board").
* 6 bidirectional high-speed serial chip-to-chip links per chip [src: SpiNNaker2 datasheet
  v0.03, 2021, "6 high-speed serial inter-chip bidirectional links", GitHub
  ``SpiNNakerManchester/SpiNNMachine`` issue attachment ``SpiNN2datasheet.pdf``].
* The 48 chips form an 8 x 6 grid [inf] wired as a triangular mesh, each chip linked to its
  E, W, N, S, NE and SW neighbours, as SpiNNaker1's 48-chip SpiNN-5 board is ("a two-dimensional
  toroidal triangular mesh", Navaridas et al., *Understanding the Interconnection Network of
  SpiNNaker*); no wrap-around on one board [inf].
* A packet goes the shortest way: diagonal (NE / SW) hops while both coordinates still differ in
  the same direction, then straight hops, x before y [inf: SpiNNaker1's default routing].
* Link bandwidth ``link_bits_per_s`` 1 Gbit/s per direction and ``packet_bits`` 40 (a 32-bit
  key plus header, as SpiNNaker1's multicast packets) [inf: no public figure for SpiNNaker2's
  serial links was found]; a link carries ``link_bits_per_s * sys_tick / packet_bits`` packets
  per tick.
* 2 GB DRAM per chip [src: TU Dresden SpiNNaker2 FAQ, "2 GB LPDDR4"; datasheet: 2 LPDDR4
  PHYs]: synapse rows that overflow a PE's SRAM may live there (``dram_rows``).

Placement: populations in topological order, each layer's PEs on consecutive PEs of one chip if
the layer fits a chip (a new chip is opened rather than splitting it), otherwise on consecutive
chips; chips are taken in a snake order over the grid, so consecutive chips are neighbours.

Spikes: every spike is one multicast packet from the PE of its neuron [src: the chip routes
spikes by multicast packets, ``../shared/design/s2-arithmetic.md``]; the routers copy it to
every chip holding a target, so a packet crosses each link of the union of the routes to its
target chips once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .network import Projection, S2Network

#: the six link directions of the triangular mesh: E, NE, N, W, SW, S (SpiNNaker1's numbering).
DIRECTIONS = ((1, 0), (1, 1), (0, 1), (-1, 0), (-1, -1), (0, -1))

Link = Tuple[int, int]  # (from chip, to chip), one direction


@dataclass(frozen=True)
class BoardSpec:
    """The board the placement targets (counts, bits, bytes).

    Attributes:
        chips: chips on the board (48).
        width, height: the grid the chips form (8 x 6) [inf].
        links_per_chip: chip-to-chip links of one chip (6) [src datasheet].
        link_bits_per_s: bits per second one link carries in one direction [inf].
        packet_bits: bits of one spike packet on a link [inf].
        dram_bytes_per_chip: DRAM of one chip (2 GiB) [src].
    """

    chips: int = 48
    width: int = 8
    height: int = 6
    links_per_chip: int = 6
    link_bits_per_s: float = 1.0e9
    packet_bits: int = 40
    dram_bytes_per_chip: int = 2 * 1024 ** 3

    def __post_init__(self) -> None:
        if self.width * self.height < self.chips:
            raise ValueError(f"a {self.width} x {self.height} grid holds fewer than {self.chips} chips")

    def coords(self, chip: int) -> Tuple[int, int]:
        """(x, y) of ``chip`` (chips numbered row by row)."""
        return chip % self.width, chip // self.width

    def chip_at(self, x: int, y: int) -> Optional[int]:
        if 0 <= x < self.width and 0 <= y < self.height:
            c = y * self.width + x
            return c if c < self.chips else None
        return None

    def neighbours(self, chip: int) -> List[int]:
        """The chips linked to ``chip`` (at most ``links_per_chip``)."""
        x, y = self.coords(chip)
        out = [self.chip_at(x + dx, y + dy) for dx, dy in DIRECTIONS[: self.links_per_chip]]
        return [c for c in out if c is not None]

    def route(self, src: int, dst: int) -> List[Link]:
        """The directed links a packet takes from chip ``src`` to chip ``dst`` (empty if equal)."""
        x, y = self.coords(src)
        tx, ty = self.coords(dst)
        links: List[Link] = []
        here = src
        while (x, y) != (tx, ty):
            dx, dy = tx - x, ty - y
            if dx and dy and (dx > 0) == (dy > 0):
                step = (1, 1) if dx > 0 else (-1, -1)
            elif dx:
                step = (1 if dx > 0 else -1, 0)
            else:
                step = (0, 1 if dy > 0 else -1)
            x, y = x + step[0], y + step[1]
            nxt = self.chip_at(x, y)
            if nxt is None:  # pragma: no cover - the grid is convex, every step stays on it
                raise ValueError(f"route {src} -> {dst} leaves the board")
            links.append((here, nxt))
            here = nxt
        return links

    def chip_order(self) -> List[int]:
        """Chips in the order placement fills them: a snake over the rows (neighbours follow each other)."""
        order = []
        for y in range(self.height):
            xs = range(self.width) if y % 2 == 0 else range(self.width - 1, -1, -1)
            order.extend(c for c in (self.chip_at(x, y) for x in xs) if c is not None)
        return order

    def packets_per_link_per_tick(self, sys_tick_s: float) -> float:
        """Spike packets one link direction carries in one tick of ``sys_tick_s`` seconds."""
        return self.link_bits_per_s * sys_tick_s / self.packet_bits


@dataclass
class ChipUse:
    """One chip of a placement: its PEs and bytes."""

    chip: int
    pes: int
    sram_bytes: int
    dram_bytes: int
    populations: List[str]


@dataclass
class Placement:
    """Result of :func:`place`: the chip of every PE (``pe_chip[i]`` for ``chip_map.pes[i]``)."""

    pe_chip: List[int]
    chips: List[ChipUse]
    max_chips: int
    usable_pes_per_chip: int
    board: BoardSpec = field(default_factory=BoardSpec)

    @property
    def n_chips(self) -> int:
        return len(self.chips)

    @property
    def fits(self) -> bool:
        return self.n_chips <= self.max_chips

    def chips_of(self, population: str, chip_map) -> List[int]:
        return sorted({c for c, pe in zip(self.pe_chip, chip_map.pes) if pe.population == population})


def place(chip_map, max_chips: int = 1, board: BoardSpec = BoardSpec(),
          dram_bytes: Optional[Mapping[int, int]] = None) -> Placement:
    """Put the PEs of ``chip_map`` (a :class:`~s2emu.chip.ChipMap`) on chips of ``board``.

    A layer that fits the PEs left on the current chip goes there; one that fits a whole chip
    opens the next chip; a bigger one fills consecutive chips. When that keeps a layer together
    at the price of more chips than ``max_chips`` while plain packing would fit, plain packing is
    used (layers then span chip boundaries).

    Args:
        chip_map: the per-PE memory map.
        max_chips: chips the deployment may use (``Placement.fits`` is False beyond it).
        board: the board.
        dram_bytes: bytes of synapse rows each PE (index into ``chip_map.pes``) keeps in DRAM.

    Returns:
        :class:`Placement`; PEs beyond the board's chips are put on chips numbered past it.
    """
    per_chip = int(chip_map.spec.usable_pes_per_chip)
    order = board.chip_order()
    layers: List[Tuple[str, List[int]]] = []
    for i, pe in enumerate(chip_map.pes):
        if not layers or layers[-1][0] != pe.population:
            layers.append((pe.population, []))
        layers[-1][1].append(i)

    def together() -> List[int]:
        slot, used, out = 0, 0, [0] * len(chip_map.pes)
        for _, idx in layers:
            n = len(idx)
            if used and n > per_chip - used and n <= per_chip:
                slot, used = slot + 1, 0
            for i in idx:
                if used == per_chip:
                    slot, used = slot + 1, 0
                out[i] = slot
                used += 1
        return out

    def packed() -> List[int]:
        return [i // per_chip for i in range(len(chip_map.pes))]

    slots = together()
    if slots and max(slots) + 1 > max_chips and math.ceil(len(slots) / per_chip) <= max_chips:
        slots = packed()
    chip_of = [order[s] if s < len(order) else board.chips + s - len(order) for s in slots]
    uses: Dict[int, ChipUse] = {}
    for i, (c, pe) in enumerate(zip(chip_of, chip_map.pes)):
        u = uses.setdefault(c, ChipUse(chip=c, pes=0, sram_bytes=0, dram_bytes=0, populations=[]))
        u.pes += 1
        u.sram_bytes += int(pe.total_bytes) - int((dram_bytes or {}).get(i, 0))
        u.dram_bytes += int((dram_bytes or {}).get(i, 0))
        if pe.population not in u.populations:
            u.populations.append(pe.population)
    ordered = [uses[c] for c in dict.fromkeys(chip_of)]
    return Placement(pe_chip=chip_of, chips=ordered, max_chips=int(max_chips), usable_pes_per_chip=per_chip,
                     board=board)


# ----------------------------------------------------------------------------- fan-out

Rates = Mapping[str, Union[float, np.ndarray]]


@dataclass
class Fanout:
    """Which PEs one projection's presynaptic neurons reach.

    ``pre`` (k,) presynaptic neuron indices, ``pe`` (k,) global PE indices (into
    ``chip_map.pes``) and ``synapses`` (k,) how many synapses of that neuron the PE holds; one
    entry per (neuron, PE) pair. Dense projections are kept in closed form
    (``dense_pes``: every presynaptic neuron reaches all of them, ``atoms`` synapses each).
    """

    projection: str
    pre_pop: str
    post_pop: str
    kind: str
    pre: np.ndarray
    pe: np.ndarray
    synapses: np.ndarray
    dense_pes: Optional[np.ndarray] = None
    dense_atoms: Optional[np.ndarray] = None


def _pes_of(chip_map, population: str) -> Tuple[np.ndarray, np.ndarray]:
    """(global PE indices, their start atoms) of ``population`` in ``chip_map``."""
    idx = [i for i, pe in enumerate(chip_map.pes) if pe.population == population]
    starts = [chip_map.pes[i].start for i in idx]
    return np.asarray(idx, np.int64), np.asarray(starts, np.int64)


def fanout(net: S2Network, chip_map, proj: Projection) -> Fanout:
    """The (presynaptic neuron, target PE, synapses) pairs of ``proj`` (see :class:`Fanout`)."""
    pre = net.populations[proj.pre]
    post = net.populations[proj.post]
    pe_idx, starts = _pes_of(chip_map, proj.post)
    empty = np.zeros(0, np.int64)
    if proj.kind == "dense":
        counts = np.asarray([chip_map.pes[i].atoms for i in pe_idx], np.int64)
        return Fanout(proj.name, proj.pre, proj.post, proj.kind, empty, empty, empty, dense_pes=pe_idx,
                      dense_atoms=counts)
    c, h, w = (tuple(pre.shape) + (1, 1, 1))[:3] if len(pre.shape) < 3 else tuple(pre.shape)
    ph, pw = proj.pool or (1, 1)
    n_pre = int(pre.size)
    cc, yy, xx = np.unravel_index(np.arange(n_pre), (c, h, w))
    py_, px_ = yy // ph, xx // pw
    ok = (py_ < h // ph) & (px_ < w // pw)  # pooling windows that do not fit are dropped
    if proj.kind == "pool":
        hp, wp = h // ph, w // pw
        tgt = (cc * hp + py_) * wp + px_
        n = np.flatnonzero(ok)
        pes = pe_idx[np.searchsorted(starts, tgt[n], side="right") - 1]
        return Fanout(proj.name, proj.pre, proj.post, proj.kind, n.astype(np.int64), pes, np.ones(len(n), np.int64))
    # conv2d: pre (ci, py, px) feeds post (co, oy, ox) for every kernel tap (ky, kx) with
    # oy * sy - pad_y + ky * dy == py (and likewise for x), co in ci's group
    co_n, ci_per_group, kh, kw = (int(s) for s in proj.weight.shape)
    _, ho, wo = post.shape
    sy, sx = proj.stride
    pady, padx = proj.padding
    dy, dx = proj.dilation
    groups = int(proj.groups)
    co_per_group = co_n // groups
    pairs_n: List[np.ndarray] = []
    pairs_pe: List[np.ndarray] = []
    base = np.flatnonzero(ok)
    group_of = cc[base] // ci_per_group
    for ky in range(kh):
        for kx in range(kw):
            ny = py_[base] + pady - ky * dy
            nx = px_[base] + padx - kx * dx
            hit = (ny % sy == 0) & (nx % sx == 0)
            oy, ox = ny // sy, nx // sx
            hit &= (oy >= 0) & (oy < ho) & (ox >= 0) & (ox < wo)
            nb, g, oy, ox = base[hit], group_of[hit], oy[hit], ox[hit]
            for j in range(co_per_group):
                co = g * co_per_group + j
                tgt = (co * ho + oy) * wo + ox
                pairs_n.append(nb)
                pairs_pe.append(pe_idx[np.searchsorted(starts, tgt, side="right") - 1])
    if not pairs_n:
        return Fanout(proj.name, proj.pre, proj.post, proj.kind, empty, empty, empty)
    n_all = np.concatenate(pairs_n)
    pe_all = np.concatenate(pairs_pe)
    key = n_all * len(chip_map.pes) + pe_all
    uniq, counts = np.unique(key, return_counts=True)
    return Fanout(proj.name, proj.pre, proj.post, proj.kind, uniq // len(chip_map.pes), uniq % len(chip_map.pes),
                  counts.astype(np.int64))


def neuron_rates(net: S2Network, rates: Rates) -> Dict[str, np.ndarray]:
    """Per-neuron spikes per tick (float64, flat) of every population from ``rates``.

    ``rates[pop]`` is a scalar (every neuron of the population) or an array of the population's
    size; a population not named gets the value of ``rates["*"]`` if given, else 0.
    """
    out = {}
    default = rates.get("*", 0.0) if hasattr(rates, "get") else 0.0
    for name, pop in net.populations.items():
        r = rates.get(name, default)
        arr = np.asarray(r, np.float64).reshape(-1)
        if arr.size == 1:
            arr = np.full(pop.size, float(arr[0]))
        if arr.size != pop.size:
            raise ValueError(f"rates for population {name!r} have {arr.size} values, expected {pop.size}")
        if np.any(arr < 0) or not np.all(np.isfinite(arr)):
            raise ValueError(f"rates for population {name!r} must be finite and >= 0")
        out[name] = arr
    return out


@dataclass
class Traffic:
    """Spike packets per tick (means at the given activity).

    Attributes:
        sent: (n_pes,) packets each PE sends.
        received: (n_pes,) packets each PE receives (one per presynaptic spike that has a target on it).
        synaptic_events: (n_pes,) synapses processed per tick on each PE.
        inter_chip: packets per tick that leave their chip (a spike with a target on another chip).
        links: packets per tick per directed chip-to-chip link ``(from, to)``.
        capacity: packets one link direction carries per tick.
        by_projection: inter-chip packets per tick per projection.
    """

    sent: np.ndarray
    received: np.ndarray
    synaptic_events: np.ndarray
    inter_chip: float
    links: Dict[Link, float]
    capacity: float
    by_projection: Dict[str, float]

    @property
    def busiest_link(self) -> Optional[Tuple[Link, float]]:
        if not self.links:
            return None
        k = max(sorted(self.links), key=lambda l: self.links[l])
        return k, self.links[k]

    @property
    def link_load(self) -> float:
        """Busiest link's packets per tick over its capacity (0 without inter-chip traffic)."""
        b = self.busiest_link
        return 0.0 if b is None else b[1] / self.capacity


def _multicast_links(board: BoardSpec, src: int, dests: Sequence[int]) -> List[Link]:
    seen: Dict[Link, None] = {}
    for d in dests:
        for link in board.route(src, d):
            seen.setdefault(link, None)
    return list(seen)


def traffic(net: S2Network, chip_map, placement: Placement, rates: Rates, sys_tick_s: float = 1e-3,
            fanouts: Optional[Sequence[Fanout]] = None) -> Traffic:
    """Packets per tick at ``rates`` (spikes per neuron per tick, see :func:`neuron_rates`).

    Args:
        net, chip_map, placement: the network, its PE map and their chips (all on the board).
        rates: activity per population.
        sys_tick_s: the tick, seconds (for the link capacity).
        fanouts: precomputed :func:`fanout` of every projection (computed if None).

    Raises:
        ValueError: the placement uses chips beyond the board (no routes there).
    """
    if any(c >= placement.board.chips for c in placement.pe_chip):
        raise ValueError(f"the placement needs {placement.n_chips} chips, more than the board's {placement.board.chips}")
    r = neuron_rates(net, rates)
    n_pes = len(chip_map.pes)
    chip_of = np.asarray(placement.pe_chip, np.int64)
    bit = np.left_shift(np.uint64(1), chip_of.astype(np.uint64))
    sent = np.zeros(n_pes)
    src_chip: Dict[str, np.ndarray] = {}
    for name, pop in net.populations.items():
        idx, starts = _pes_of(chip_map, name)
        for i in idx:
            pe = chip_map.pes[i]
            sent[i] = r[name][pe.start:pe.stop].sum()
        src_chip[name] = chip_of[idx[np.searchsorted(starts, np.arange(pop.size), side="right") - 1]] \
            if len(idx) else np.zeros(pop.size, np.int64)
    received = np.zeros(n_pes)
    events = np.zeros(n_pes)
    masks: Dict[str, np.ndarray] = {}
    by_proj: Dict[str, float] = {}
    fos = list(fanouts) if fanouts is not None else [fanout(net, chip_map, p) for p in net.projections]
    for fo in fos:
        rate = r[fo.pre_pop]
        mask = np.zeros(len(rate), np.uint64)
        if fo.dense_pes is not None:
            total = rate.sum()
            received[fo.dense_pes] += total
            events[fo.dense_pes] += total * fo.dense_atoms
            mask |= np.bitwise_or.reduce(bit[fo.dense_pes]) if len(fo.dense_pes) else np.uint64(0)
        else:
            w = rate[fo.pre]
            np.add.at(received, fo.pe, w)
            np.add.at(events, fo.pe, w * fo.synapses)
            np.bitwise_or.at(mask, fo.pre, bit[fo.pe])
        own = np.left_shift(np.uint64(1), src_chip[fo.pre_pop].astype(np.uint64))
        by_proj[fo.projection] = float(rate[(mask & ~own) != 0].sum())
        masks[fo.pre_pop] = masks.get(fo.pre_pop, np.zeros(len(rate), np.uint64)) | mask
    links: Dict[Link, float] = {}
    inter = 0.0
    for pop, mask in masks.items():
        rate = r[pop]
        src = src_chip[pop]
        away = mask & ~np.left_shift(np.uint64(1), src.astype(np.uint64))
        keep = (away != 0) & (rate > 0)
        if not keep.any():
            continue
        keys = np.stack([src[keep].astype(np.uint64), away[keep]], axis=1)
        uniq, inv = np.unique(keys, axis=0, return_inverse=True)
        sums = np.bincount(inv.reshape(-1), weights=rate[keep], minlength=len(uniq))
        for (s, m), total in zip(uniq, sums):
            dests = [c for c in range(placement.board.chips) if (int(m) >> c) & 1]
            inter += float(total)
            for link in _multicast_links(placement.board, int(s), dests):
                links[link] = links.get(link, 0.0) + float(total)
    return Traffic(sent=sent, received=received, synaptic_events=events, inter_chip=inter, links=links,
                   capacity=placement.board.packets_per_link_per_tick(sys_tick_s), by_projection=by_proj)




@dataclass
class BoardMap:
    """Result of :func:`map_to_board`: the PE map, its placement and whether it fits, with the reasons."""

    chip_map: Any
    placement: Placement
    fits: bool
    reasons: List[str]

    def chip_rows(self) -> List[Dict[str, Any]]:
        """Per chip: id, grid position, PEs, data SRAM and DRAM bytes used, populations."""
        b = self.placement.board
        return [{"chip": u.chip, "xy": list(b.coords(u.chip)) if u.chip < b.chips else None, "pes": u.pes,
                 "sram_bytes": u.sram_bytes, "dram_bytes": u.dram_bytes, "populations": list(u.populations)}
                for u in self.placement.chips]


def map_to_board(net: S2Network, max_chips: int = 1, board: BoardSpec = BoardSpec(),
                 atoms_per_core: Optional[Mapping[str, int]] = None, input_ticks: int = 1,
                 dram_rows: Optional[bool] = None) -> BoardMap:
    """Map ``net`` onto PEs (:func:`s2emu.chip.map_to_chip`) and place them on up to ``max_chips`` chips.

    Args:
        net: the lowered network.
        max_chips: chips the deployment may use (1 .. ``board.chips``; more needs several boards,
            which this model does not route).
        board: the board.
        atoms_per_core, input_ticks: as for :func:`~s2emu.chip.map_to_chip`.
        dram_rows: keep synapse rows that overflow a PE's SRAM in the chip's DRAM; default: on
            when more than one chip is allowed (the multi-chip mapper), off for one chip (the
            single-chip check stays as before).

    Returns:
        :class:`BoardMap`; ``reasons`` says, one line each, why it does not fit.
    """
    from .chip import map_to_chip

    if max_chips < 1:
        raise ValueError(f"max_chips must be >= 1, got {max_chips}")
    use_dram = (max_chips > 1) if dram_rows is None else bool(dram_rows)
    cm = map_to_chip(net, max_chips=max_chips, atoms_per_core=atoms_per_core, input_ticks=input_ticks,
                     dram_rows=use_dram)
    dram = {i: pe.dram_bytes for i, pe in enumerate(cm.pes) if pe.dram_bytes}
    pl = place(cm, max_chips=max_chips, board=board, dram_bytes=dram)
    reasons: List[str] = []
    for r in cm.rows:
        if not r.fits:
            reasons.append(f"layer '{r.name}' needs {r.max_bytes_per_pe:,} B of data SRAM on one PE, more than the "
                           f"{cm.spec.data_sram_per_pe:,} B a PE has" +
                           ("" if use_dram else " (with --chips N > 1 synapse rows that overflow go to DRAM)"))
    if not pl.fits:
        reasons.append(f"needs {cm.total.pes} PEs on {pl.n_chips} chips of {cm.spec.usable_pes_per_chip} usable PEs "
                       f"(a layer's PEs kept together), more than the {max_chips} chip(s) allowed")
    for u in pl.chips:
        if u.dram_bytes > board.dram_bytes_per_chip:
            reasons.append(f"chip {u.chip} needs {u.dram_bytes:,} B of DRAM for synapse rows, more than its "
                           f"{board.dram_bytes_per_chip:,} B")
    if max_chips > board.chips:
        reasons.append(f"{max_chips} chips are more than one board's {board.chips}; multi-board routing is not modelled")
    return BoardMap(chip_map=cm, placement=pl, fits=not reasons, reasons=reasons)
