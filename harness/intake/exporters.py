"""Run a framework's own NIR exporter on a model, then :func:`~harness.intake.clean.clean` the result.

Each helper imports its framework only when called (the frameworks are the optional ``peers``
extra). Where the exporter loses something the module still knows, the helper puts it back and
lists that as a repair too:

* :func:`from_sinabs`: ``sinabs.nir.to_nir``; a LIF layer with ``norm_input=True`` (Sinabs'
  default: ``v = alpha*v + (1-alpha)*input``) gets ``r = 1 - exp(-1/tau_mem)``, which the exporter
  drops (it writes ``r = 1``).
* :func:`from_snntorch`: snnTorch's own module map (``snntorch.export_nir._extract_snntorch_module``)
  through ``nirtorch.extract_nir_graph`` without ``export_to_nir``'s final ``infer_types()``, which
  raises on the sample's batch axis before anything can be repaired.
* :func:`from_norse`: ``norse.torch.to_nir``; layers it leaves empty (``torch.nn.Flatten``) are
  filled from the module, and Norse 1.1.0's ``tau = dt/tau_mem_inv`` is divided back to
  ``1/tau_mem_inv`` (checked against the module's own parameter).
* :func:`from_rockpool`: ``rockpool.nn.modules.torch.nir.to_nir``.

The way back, for a round trip: :func:`to_norse` (Norse's importer, with its batch-axis Flatten
repaired) and :func:`to_sinabs` (Sinabs' importer, one spike per tick).
"""
from __future__ import annotations

from typing import Any, List, Tuple

import numpy as np

from s2common.errors import UnsupportedError

from .clean import Repair, clean


def _modules(module: Any) -> dict:
    return dict(module.named_modules())


def from_sinabs(module: Any, sample: Any) -> Tuple[Any, List[Repair]]:
    """Export a Sinabs model with ``sinabs.nir.to_nir(module, sample)`` and clean it (preset ``sinabs``).

    Args:
        module: a ``torch.nn.Module`` of Sinabs layers (e.g. a ``Sequential``).
        sample: a tensor of shape ``(batch, *input_shape)`` (Sinabs' squeezed layers: batch*time).
    """
    import sinabs.layers as sl
    import sinabs.nir

    graph = sinabs.nir.to_nir(module, sample)
    mods = _modules(module)
    extra: List[Repair] = []
    for name, node in graph.nodes.items():
        layer = mods.get(name)
        if type(node).__name__ == "LIF" and isinstance(layer, sl.LIF) and getattr(layer, "norm_input", False):
            alpha = np.exp(-1.0 / np.asarray(layer.tau_mem.detach().cpu().numpy(), dtype=np.float64))
            node.r = np.broadcast_to(1.0 - alpha, np.shape(alpha)).copy()
            extra.append(Repair(name, "Sinabs LIF norm_input=True (v = alpha*v + (1-alpha)*input): r -> 1 - exp(-1/tau_mem), "
                                      "which sinabs.nir.to_nir drops"))
    graph, repairs = clean(graph, "sinabs")
    return _with(graph, extra + repairs)


def from_snntorch(module: Any, sample: Any) -> Tuple[Any, List[Repair]]:
    """Export an snnTorch model with snnTorch's own module map and clean it.

    The export carries no reset (it writes ``v_reset = 0``), so the preset is read from the module's
    ``Leaky``/``Synaptic`` layers: ``reset_mechanism="zero"`` (with or without ``reset_delay``: the same
    spikes) -> ``snntorch`` (what snnTorch's importer builds); ``"subtract"`` with ``reset_delay=True``
    (snnTorch's default) -> ``snntorch-subtract``.

    Raises:
        UnsupportedError: ``reset_mechanism="none"``, ``"subtract"`` with ``reset_delay=False`` (its
            "avoid double reset" rule is not modelled), or layers that need different presets.
    """
    import nirtorch
    import snntorch as snn
    from snntorch.export_nir import _extract_snntorch_module

    presets = {}
    for name, layer in _modules(module).items():
        if isinstance(layer, (snn.Leaky, snn.Synaptic)):
            mech = getattr(layer, "reset_mechanism", "subtract")
            delay = bool(getattr(layer, "reset_delay", True))
            if mech == "zero":
                presets[name] = "snntorch"
            elif mech == "subtract" and delay:
                presets[name] = "snntorch-subtract"
            else:
                raise UnsupportedError(f"{type(layer).__name__}(reset_mechanism={mech!r}, reset_delay={delay}) has no "
                                       "reference preset", node=name, rule="snntorch-reset",
                                       hint="use reset_mechanism='zero', or 'subtract' with reset_delay=True "
                                            "(snnTorch's default)")
    if len(set(presets.values())) > 1:
        first = sorted(presets)[0]
        other = next(n for n in sorted(presets) if presets[n] != presets[first])
        raise UnsupportedError(f"layers {first} and {other} reset differently; one graph is judged in one preset",
                               node=other, rule="snntorch-reset", hint="use one reset_mechanism for every layer")
    graph = nirtorch.extract_nir_graph(module, _extract_snntorch_module, sample, model_name="snntorch",
                                       ignore_submodules_of=[snn.RLeaky, snn.RSynaptic])
    graph, repairs = clean(graph, "snntorch")
    preset = next(iter(presets.values()), "snntorch")
    if preset != "snntorch":
        graph.metadata["s2gate.preset"] = preset
        repairs.append(Repair("graph", f"s2gate.preset = {preset}: the layers reset by subtraction one tick late "
                                       "(snnTorch's default Leaky), which the export does not carry"))
    return _with(graph, repairs)


def from_norse(module: Any, sample: Any) -> Tuple[Any, List[Repair]]:
    """Export a Norse model with ``norse.torch.to_nir(module, sample)`` and clean it (preset ``norse``)."""
    import nir
    import norse.torch as nt
    import torch

    graph = nt.to_nir(module, sample)
    mods = _modules(module)
    extra: List[Repair] = []
    dts = set()
    for name, node in list(graph.nodes.items()):
        layer = mods.get(name)
        if node is None and isinstance(layer, torch.nn.Flatten):
            start = layer.start_dim - 1 if layer.start_dim > 0 else layer.start_dim
            end = layer.end_dim - 1 if layer.end_dim > 0 else layer.end_dim
            graph.nodes[name] = nir.Flatten(input_type=None, start_dim=start, end_dim=end)
            extra.append(Repair(name, f"norse.torch.to_nir left torch.nn.Flatten({layer.start_dim}, {layer.end_dim}) "
                                      f"empty -> nir.Flatten({start}, {end}) (dims without batch)"))
            continue
        p = getattr(layer, "p", None)
        inv = getattr(p, "tau_mem_inv", None)
        if node is not None and inv is not None and type(node).__name__ in ("LIF", "LI", "CubaLIF"):
            dt = float(getattr(layer, "dt", 1e-3))
            dts.add(dt)
            key = "tau" if type(node).__name__ != "CubaLIF" else "tau_mem"
            want = 1.0 / np.asarray(inv.detach().cpu().numpy(), dtype=np.float64)
            have = np.asarray(getattr(node, key).detach().cpu().numpy() if hasattr(getattr(node, key), "detach")
                              else getattr(node, key), dtype=np.float64)
            if not np.allclose(have, want, rtol=1e-6) and np.allclose(have, want * 1e-3, rtol=1e-6):
                setattr(node, key, want)
                fix = [key]
                syn = getattr(p, "tau_syn_inv", None)
                if key == "tau_mem" and syn is not None:
                    node.tau_syn = 1.0 / np.asarray(syn.detach().cpu().numpy(), dtype=np.float64)
                    fix.append("tau_syn")
                extra.append(Repair(name, f"Norse 1.1.0 writes {'/'.join(fix)} = dt/tau_inv with dt = 1e-3 -> "
                                          "1/tau_inv (the cell's own time constant)"))
    if len(dts) > 1:
        raise UnsupportedError(f"the Norse cells use different dt {sorted(dts)}", rule="norse-dt",
                               hint="use one dt for every cell")
    graph, repairs = clean(graph, "norse")
    if dts and dts != {1e-3}:
        graph.metadata["s2gate.dt"] = float(dts.pop())
        repairs.append(Repair("graph", f"s2gate.dt = {graph.metadata['s2gate.dt']:g} s (the cells' dt)"))
    return _with(graph, extra + repairs)


def from_rockpool(module: Any, sample: Any = None) -> Tuple[Any, List[Repair]]:
    """Export a Rockpool torch model with Rockpool's ``to_nir`` and clean it (preset ``rockpool``)."""
    from rockpool.nn.modules.torch.nir import to_nir

    return clean(to_nir(module, sample), "rockpool")


def to_norse(graph: Any, dt: float = 1e-3) -> Tuple[Any, List[Repair]]:
    """Import a NIR graph into Norse (``norse.torch.from_nir(graph, dt=dt)``) for a forward pass on batches.

    Norse 1.1.0 maps NIR ``Flatten(start_dim=0)`` (dims without batch, NIR's convention) to
    ``torch.nn.Flatten(0)``, which flattens the batch axis too; each such module is replaced by the
    flatten NIR means (``start_dim + 1``, ``end_dim + 1`` when non-negative) and listed as a repair.
    Returns the Norse module and the repairs.
    """
    import norse.torch as nt
    import torch

    module = nt.from_nir(graph, dt=dt)
    repairs: List[Repair] = []
    for name, layer in list(module.named_modules()):
        if isinstance(layer, torch.nn.Flatten) and layer.start_dim >= 0:
            start = layer.start_dim + 1
            end = layer.end_dim + 1 if layer.end_dim >= 0 else layer.end_dim
            old = (layer.start_dim, layer.end_dim)
            layer.start_dim, layer.end_dim = start, end  # in place: the executor holds the module object
            repairs.append(Repair(name, f"Norse imported NIR Flatten as torch.nn.Flatten{old}, over the batch "
                                        f"axis -> torch.nn.Flatten({start}, {end})"))
    return module, repairs


def to_sinabs(graph: Any, batch_size: int) -> Tuple[Any, List[Repair]]:
    """Import a NIR graph into Sinabs (``sinabs.nir.from_nir(graph, batch_size=batch_size)``), one spike per tick.

    Sinabs' importer builds its layers with the default ``MultiSpike`` (``floor(v/threshold)`` spikes per
    tick), which the ``sinabs`` preset does not model; each spiking layer gets ``SingleSpike`` (the
    preset's ``v >= threshold`` with one subtraction), listed as a repair. The IAF layers keep the
    importer's ``min_v_mem = -threshold`` clamp. Input of the module: (batch*time, *input_shape),
    batch-major; it returns nirtorch's (output, state).
    """
    import sinabs.activation as sa
    import sinabs.layers as sl
    import sinabs.nir

    module = sinabs.nir.from_nir(graph, batch_size=batch_size)
    repairs: List[Repair] = []
    for name, layer in module.named_modules():
        if isinstance(layer, (sl.IAF, sl.LIF)) and getattr(layer, "spike_fn", None) is not sa.SingleSpike:
            layer.spike_fn = sa.SingleSpike
            repairs.append(Repair(name, f"Sinabs imported {type(layer).__name__} with MultiSpike -> SingleSpike "
                                        "(one spike per tick, as the sinabs preset)"))
    return module, repairs


def _with(graph: Any, repairs: List[Repair]) -> Tuple[Any, List[Repair]]:
    """Store the full repair list (helper's and clean's) in the graph's metadata."""
    if repairs:
        graph.metadata["s2gate.repairs"] = "\n".join(str(r) for r in repairs)
    return graph, repairs
