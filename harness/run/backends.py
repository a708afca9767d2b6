"""Backends: run a (quantized) NIR graph on some input spikes and return a :class:`Recording`.

Every backend has ``name`` and ``run(graph, inputs, *, record=None) -> Recording`` with
``inputs`` of shape (batch, time, *input_shape) (spikes, bool or 0/1) and ``record`` as in the
reference simulator's contract (None: spikes of every spiking node; a list of node names: also
their ``"v"`` and ``"i"``; ``"all"``). Recordings from any backend have the same format and
can be compared offline (:mod:`harness.compare`).

* :class:`ReferenceBackend`: the float NIR simulator (``reference.simulate``); preset
  ``"spinnaker2"`` models one tick of latency per projection, like the chip.
* :class:`EmulatorBackend`: the bit-exact int8 emulator (``s2emu.lower`` then the fast
  ``Engine`` or the scalar ``GoldenModel``); options from
  :func:`harness.run.options.emulator_options` (a quantized graph runs with weight scaling off).
* :class:`BoardBackend`: a SpiNNaker2 board through py-spinnaker2 (``spinnaker2`` package),
  when it is importable and a host is given; otherwise :class:`BoardUnavailable`.
"""
from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional, Protocol, Sequence, Union, runtime_checkable

import numpy as np

from harness.flags import flag
from s2common.errors import InputDataError, S2GateError
from s2common.recording import Recording

Record = Union[None, str, Sequence[str]]


class BoardUnavailable(S2GateError):
    """No SpiNNaker2 board can be driven from here (py-spinnaker2 missing, or no host given)."""

    rule_default = "board-unavailable"


@runtime_checkable
class Backend(Protocol):
    """Runs a graph on inputs and records what happened."""

    name: str

    def run(self, graph: Any, inputs: np.ndarray, *, record: Record = None) -> Recording:
        """``graph``: nir.NIRGraph (or FlatGraph / path); ``inputs``: (batch, time, *input_shape)."""
        ...


class ReferenceBackend:
    """The float reference simulator.

    Args:
        preset: discretisation preset of ``reference.simulate`` (``"spinnaker2"`` aligns tick
            for tick with the emulator).
        dtype: float type of the simulation (float64 by default).
        options: extra ``reference`` options (passed through).
        dt: the tick in seconds (None: the preset's).
    """

    def __init__(self, preset: str = "spinnaker2", dtype: Any = np.float64, options: Any = None,
                 dt: Optional[float] = None) -> None:
        self.preset = preset
        self.dtype = dtype
        self.options = options
        self.dt = dt
        self.name = f"reference[{preset}]"
        self._order: Optional[tuple] = None  # (graph object, topological order)

    def run(self, graph: Any, inputs: np.ndarray, *, record: Record = None) -> Recording:
        import reference

        kw: Dict[str, Any] = {"preset": self.preset, "dtype": self.dtype, "record": record}
        if self.options is not None:
            kw["options"] = self.options
        if self.dt is not None:
            kw["dt"] = self.dt
        rec = reference.simulate(graph, inputs, **kw)
        if self._order is None or self._order[0] is not graph:
            self._order = (graph, _graph_order(graph))
        _set_node_order(rec, self._order[1])
        rec.meta.setdefault("backend", "reference")
        rec.meta.setdefault("preset", self.preset)
        return rec


class EmulatorBackend:
    """The int8 SpiNNaker2 emulator.

    Args:
        options: ``s2emu.ConversionOptions``; default :func:`harness.run.options.emulator_options`
            of the graph (weight scaling off for a quantized graph, the model's ``s2gate.dt``).
        engine: ``"fast"`` (batched ``Engine``) or ``"golden"`` (scalar ``GoldenModel``).
        network: an already lowered ``S2Network`` to run (then ``graph`` only names the nodes).
        threads: torch threads of the fast engine (None: torch's default).
    """

    def __init__(self, options: Any = None, engine: str = "fast", *, network: Any = None,
                 threads: Optional[int] = None) -> None:
        if engine not in ("fast", "golden"):
            raise ValueError(f"engine must be 'fast' or 'golden', got {engine!r}")
        self.options = options
        self.engine = engine
        self.threads = threads
        self.name = f"emulator[{engine}]"
        self._network = network
        self._cache: Optional[tuple] = None  # (graph object, net): lowering once per graph
        self._engine: Optional[tuple] = None  # (net, engine): one engine per network

    def lower(self, graph: Any) -> Any:
        """The lowered ``S2Network`` of ``graph`` (cached for the last graph object)."""
        import s2emu

        from .options import emulator_options

        if self._network is not None:
            return self._network
        if self._cache is not None and self._cache[0] is graph:
            return self._cache[1]
        options = self.options if self.options is not None else emulator_options(graph)
        net = s2emu.lower(graph, options)
        self._cache = (graph, net)
        return net

    def run(self, graph: Any, inputs: np.ndarray, *, record: Record = None) -> Recording:
        import s2emu

        net = self.lower(graph)
        if self._engine is None or self._engine[0] is not net:
            eng = (s2emu.Engine(net, threads=self.threads) if self.engine == "fast" else s2emu.GoldenModel(net))
            self._engine = (net, eng)
        rec = self._engine[1].run(inputs, record=record)
        _set_node_order(rec, [p for p in net.populations])
        rec.meta.setdefault("backend", "emulator")
        rec.meta.setdefault("engine", self.engine)
        return rec


class BoardBackend:
    """A SpiNNaker2 board driven by py-spinnaker2 (the ``spinnaker2`` package).

    The conversion follows py-spinnaker2's NIR path as used by the NIR paper
    (neuromorphs/NIR ``paper/03_rnn/s2_apply.py``, ``paper/02_cnn/s2_apply_onchip.py``) and its
    public copy (SpiNNakerManchester/sPiNNIRker ``spinnirker/__init__.py``): only populations
    that feed an ``Output`` node are recorded, so ``s2_nir.add_output_to_node`` is called for
    every other population to record; ``s2_nir.from_nir(graph, ConversionConfig(...))`` returns
    ``(net, input_pops, output_pops)``; input spikes are ``input_pops[0].params = {flat neuron
    index: [ticks]}``; each sample runs with ``net.reset()`` then
    ``hardware.SpiNNaker2Chip(eth_ip=host).run(net, ticks, sys_tick_in_s=..., debug=False)``;
    ``pop.get_spikes()`` gives ``{neuron: [ticks]}`` and ``pop.get_voltages()`` ``{neuron: [v per
    tick]}``, in chip units (the quantized graph with weight scaling off: the same units as
    the emulator's ``"v"``).

    Args:
        host: the board's Ethernet IP.
        options: ``s2emu.ConversionOptions`` whose ``dt``, ``reset``, ``integrator``,
            ``conn_delay`` are handed to py-spinnaker2 (weight scaling is always off).
        sys_tick_in_s: wall-clock length of a tick on the board (1 ms as in the Braille run;
            the CNN needed 2.5 ms).
        extra_ticks: ticks to run beyond the input length (the NIR paper's CNN ran one more to
            see the last input's effect); compare with ``time_shift`` accordingly.
        max_atoms_per_core: ``{population: neurons per PE}`` overrides.
        record_voltages: also record ``"v"``.
    """

    name = "board"

    def __init__(self, host: Optional[str] = None, *, options: Any = None, sys_tick_in_s: float = 1.0e-3,
                 extra_ticks: int = 0, max_atoms_per_core: Optional[Dict[str, int]] = None,
                 record_voltages: bool = True) -> None:
        self.host = host
        self.options = options
        self.sys_tick_in_s = sys_tick_in_s
        self.extra_ticks = int(extra_ticks)
        self.max_atoms_per_core = dict(max_atoms_per_core or {})
        self.record_voltages = record_voltages

    @staticmethod
    def import_spinnaker2() -> Any:
        """The ``spinnaker2`` package's ``(hardware, s2_nir)``; :class:`BoardUnavailable` if absent."""
        try:
            from spinnaker2 import hardware, s2_nir  # type: ignore[import-not-found]
        except ImportError as exc:
            raise BoardUnavailable(f"py-spinnaker2 is not installed ({exc.name or 'spinnaker2'} cannot be imported)",
                                   hint="install py-spinnaker2 (gitlab.com/spinnaker2/py-spinnaker2) next to s2gate "
                                        f"and pass the board's IP with {flag('board-host')} / BoardBackend(host=...)") from None
        return hardware, s2_nir

    def check(self) -> None:
        """Raise :class:`BoardUnavailable` unless a board can be driven."""
        self.import_spinnaker2()
        if not self.host:
            raise BoardUnavailable("no SpiNNaker2 board host given",
                                   hint=f"pass the board's IP with {flag('board-host')} HOST / BoardBackend(host=HOST)")

    def run(self, graph: Any, inputs: np.ndarray, *, record: Record = None) -> Recording:
        self.check()
        hardware, s2_nir = self.import_spinnaker2()
        nir_graph = _as_nir_graph(graph)
        x = np.asarray(inputs)
        if x.ndim < 3:
            raise InputDataError(f"inputs must be (batch, time, *input_shape), got shape {x.shape}")
        from s2common.graph import flatten_graph

        flat = flatten_graph(nir_graph)
        neurons = [n for n in flat.order if type(flat.nodes[n]).__name__ in ("LIF", "IF", "CubaLIF")]
        if record in (None, "all"):
            wanted = neurons
        else:
            wanted = [n for n in record if n in neurons]
        g = copy.deepcopy(nir_graph)
        feeding_output = {s for s, t in g.edges if type(g.nodes.get(t)).__name__ == "Output"}
        for n in wanted:
            if n not in feeding_output and n in g.nodes:
                s2_nir.add_output_to_node(n, g, f"s2gate_rec_{n}")
        cfg = self._config(s2_nir)
        net, inp, outp = s2_nir.from_nir(g, cfg)
        if len(inp) != 1:
            raise BoardUnavailable(f"py-spinnaker2 made {len(inp)} input populations; s2gate drives one")
        for pop in net.populations:
            if pop.name in self.max_atoms_per_core:
                pop.set_max_atoms_per_core(self.max_atoms_per_core[pop.name])
        b, t = x.shape[:2]
        ticks = t + self.extra_ticks
        pops = {p.name: p for p in outp if p.name in wanted}
        shapes = {n: flat.out_shape[n] for n in pops}
        spikes = {n: np.zeros((b, ticks, int(np.prod(shapes[n]))), dtype=bool) for n in pops}
        volts = {n: np.zeros((b, ticks, int(np.prod(shapes[n]))), dtype=np.float32) for n in pops}
        flat_in = x.reshape(b, t, -1) != 0
        for sample in range(b):
            inp[0].params = {i: np.flatnonzero(flat_in[sample, :, i]).astype(int).tolist()
                             for i in range(flat_in.shape[2])}
            net.reset()
            hw = hardware.SpiNNaker2Chip(eth_ip=self.host)
            hw.run(net, ticks, sys_tick_in_s=self.sys_tick_in_s, debug=False)
            for n, pop in pops.items():
                for nrn, times in pop.get_spikes().items():
                    times = np.asarray(times, dtype=np.int64)
                    times = times[(times >= 0) & (times < ticks)]
                    spikes[n][sample, times, int(nrn)] = True
                if self.record_voltages:
                    for nrn, trace in pop.get_voltages().items():
                        trace = np.asarray(trace, dtype=np.float32)[:ticks]
                        volts[n][sample, :len(trace), int(nrn)] = trace
            del hw
        rec = Recording(dt=float(getattr(cfg, "dt", 1e-4)),
                        meta={"backend": "board", "host": self.host, "sys_tick_in_s": self.sys_tick_in_s,
                              "extra_ticks": self.extra_ticks, "v_units": "chip",
                              "node_order": [n for n in flat.order if n in pops or n in flat.inputs]})
        if flat.inputs:  # what the board was fed, as the emulator records it (zeros in the extra ticks)
            fed = np.zeros((b, ticks, *x.shape[2:]), dtype=bool)
            fed[:, :t] = x != 0
            rec.add(flat.inputs[0], "spikes", fed)
        for n in wanted:
            if n in pops:
                rec.add(n, "spikes", spikes[n].reshape(b, ticks, *shapes[n]))
                if self.record_voltages:
                    rec.add(n, "v", volts[n].reshape(b, ticks, *shapes[n]))
        return rec

    def _config(self, s2_nir: Any) -> Any:
        """py-spinnaker2's ``ConversionConfig`` from our options, passing only fields it has."""
        import dataclasses

        opts = self.options
        dt = getattr(opts, "dt", 1e-4)
        kw: Dict[str, Any] = {"output_record": ["spikes", "v"] if self.record_voltages else ["spikes"], "dt": dt,
                              "conn_delay": getattr(opts, "conn_delay", 0), "scale_weights": False}
        reset = getattr(opts, "reset", "subtract")
        if hasattr(s2_nir, "ResetMethod"):
            kw["reset"] = s2_nir.ResetMethod.SUBTRACT if reset == "subtract" else s2_nir.ResetMethod.ZERO
        if hasattr(s2_nir, "IntegratorMethod"):
            integ = getattr(opts, "integrator", "euler")
            kw["integrator"] = (s2_nir.IntegratorMethod.FORWARD if integ == "euler"
                                else s2_nir.IntegratorMethod.EXPONENTIAL)
        cls = s2_nir.ConversionConfig
        if dataclasses.is_dataclass(cls):
            names = {f.name for f in dataclasses.fields(cls)}
            kw = {k: v for k, v in kw.items() if k in names}
        return cls(**kw)


def _graph_order(graph: Any) -> List[str]:
    """The topological order of a graph's nodes (a NIR graph, FlatGraph or path)."""
    from s2common.graph import FlatGraph, flatten_graph, read_flat

    g = graph
    flat = g if isinstance(g, FlatGraph) else read_flat(g) if isinstance(g, (str, bytes)) or hasattr(
        g, "__fspath__") else flatten_graph(g)
    return list(flat.order)


def _set_node_order(rec: Recording, graph_or_names: Any) -> None:
    """Store the graph's topological order of the recorded nodes in ``rec.meta["node_order"]``
    (HDF5 lists groups alphabetically, so a saved recording forgets its order otherwise)."""
    if "node_order" in rec.meta:
        return
    names = graph_or_names if isinstance(graph_or_names, list) else _graph_order(graph_or_names)
    rec.meta["node_order"] = [n for n in names if n in rec.data] + [n for n in rec.nodes if n not in names]


def _as_nir_graph(graph: Any) -> Any:
    from s2common.graph import FlatGraph, load_graph

    if isinstance(graph, FlatGraph):
        return graph.graph
    if isinstance(graph, (str, bytes)) or hasattr(graph, "__fspath__"):
        return load_graph(graph)
    return graph


#: name -> backend class (``get_backend`` keywords go to its constructor).
BACKENDS = {"reference": ReferenceBackend, "emulator": EmulatorBackend, "board": BoardBackend}


def get_backend(name: str, **kw: Any) -> Backend:
    """A backend by name: ``reference``, ``emulator`` (``engine=``), ``golden`` (the emulator's
    scalar engine) or ``board`` (``host=``)."""
    if name == "golden":
        kw.setdefault("engine", "golden")
        name = "emulator"
    if name not in BACKENDS:
        raise S2GateError(f"unknown backend '{name}'", rule="unknown-backend",
                          hint=f"one of: {', '.join(list(BACKENDS) + ['golden'])}")
    return BACKENDS[name](**kw)
