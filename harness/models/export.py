"""Export the P-SNN / Q-SNN to NIR (written with ``nir`` directly; snnTorch's and Norse's
exporters fail on conv nets).

Graph (node names are stable; the gate and the model card refer to them):

    input -> conv1 -> if1 -> pool1 -> conv2 -> if2 -> pool2 -> flatten -> fc1 -> if3 -> fc2 -> if4 -> output

Float export: weights as trained (float32), zero biases, ``IF(r=1, v_threshold=θ, v_reset=0)``.
Q-SNN export (quantized-NIR contract, docs/contracts.md): weights are the Brevitas integer codes
``quant_weight().int()`` and each population's threshold is multiplied by λ = 1/scale of the
weight layer that feeds it (via ``harness.quantize.qat`` when present).

Graph metadata: ``s2gate.preset`` ("spinnaker2"), ``s2gate.T``, ``s2gate.dt``, ``s2gate.model``,
``s2gate.atoms_per_core`` (``{"if3": 4}``: neurons per PE for the chip map),
``s2gate.readout`` ("spike-count-argmax"), ``s2gate.train_command``, ``s2gate.seed``.
"""
from __future__ import annotations

import hashlib
import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

#: Node names of the exported graph, in order.
NODE_ORDER = ("input", "conv1", "if1", "pool1", "conv2", "if2", "pool2", "flatten", "fc1", "if3",
              "fc2", "if4", "output")
NEURON_NODES = ("if1", "if2", "if3", "if4")
WEIGHT_NODES = ("conv1", "conv2", "fc1", "fc2")
#: max_atoms_per_core overrides written into the graph metadata (``s2gate.atoms_per_core``).
ATOMS_PER_CORE = {"if3": 4}


def _if_node(n: int | Tuple[int, ...], theta: float):
    import nir

    shape = (n,) if isinstance(n, int) else tuple(n)
    return nir.IF(r=np.ones(shape, np.float32), v_threshold=np.full(shape, theta, np.float32),
                  v_reset=np.zeros(shape, np.float32))


def _conv_node(weight: np.ndarray, in_hw: Tuple[int, int], padding: int):
    import nir

    return nir.Conv2d(input_shape=in_hw, weight=weight.astype(np.float32), stride=1, padding=padding,
                      dilation=1, groups=1, bias=np.zeros(weight.shape[0], np.float32))


def _affine_node(weight: np.ndarray):
    import nir

    return nir.Affine(weight=weight.astype(np.float32), bias=np.zeros(weight.shape[0], np.float32))


def _pool_node():
    import nir

    return nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))


def build_graph(weights: List[np.ndarray], thresholds: List[float], arch, metadata: Dict[str, Any],
                weight_nodes: Optional[Dict[str, Any]] = None, neuron_nodes: Optional[Dict[str, Any]] = None):
    """Assemble the NIR graph from four weight arrays (conv1, conv2, fc1, fc2) and four thresholds.

    ``weight_nodes`` / ``neuron_nodes`` may replace individual nodes (used by the Q-SNN export).
    """
    import nir

    c1, c2 = arch.conv_channels
    S = arch.in_size
    pad = arch.kernel // 2
    nodes: Dict[str, Any] = {
        "input": nir.Input(input_type={"input": np.array([arch.in_channels, S, S])}),
        "conv1": _conv_node(weights[0], (S, S), pad),
        "if1": _if_node((c1, S, S), thresholds[0]),
        "pool1": _pool_node(),
        "conv2": _conv_node(weights[1], (S // 2, S // 2), pad),
        "if2": _if_node((c2, S // 2, S // 2), thresholds[1]),
        "pool2": _pool_node(),
        "flatten": nir.Flatten(input_type={"input": np.array([c2, S // 4, S // 4])}, start_dim=0, end_dim=-1),
        "fc1": _affine_node(weights[2]),
        "if3": _if_node(arch.hidden, thresholds[2]),
        "fc2": _affine_node(weights[3]),
        "if4": _if_node(arch.n_classes, thresholds[3]),
        "output": nir.Output(output_type={"output": np.array([arch.n_classes])}),
    }
    nodes.update(weight_nodes or {})
    nodes.update(neuron_nodes or {})
    edges = list(zip(NODE_ORDER[:-1], NODE_ORDER[1:]))
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(metadata))
    return graph


def weights_digest(weights: List[np.ndarray]) -> str:
    """sha256 over the float32 bytes of the weights (for provenance / ``source_digest``)."""
    h = hashlib.sha256()
    for w in weights:
        h.update(np.ascontiguousarray(w, dtype=np.float32).tobytes())
    return h.hexdigest()


def base_metadata(model: str, T: int, dt: float, seed: int, command: str, extra: Optional[Dict[str, Any]] = None
                  ) -> Dict[str, Any]:
    """Graph-level metadata shared by both exports."""
    meta: Dict[str, Any] = {
        "s2gate.preset": "spinnaker2",
        "s2gate.T": int(T),
        "s2gate.dt": float(dt),
        "s2gate.model": model,
        "s2gate.readout": "spike-count-argmax",
        "s2gate.seed": int(seed),
        "s2gate.train_command": command,
        # fc1 (1024 -> 128, dense after pooling) overflows one PE's data SRAM at py-spinnaker2's default
        # 250 atoms/PE (~1.1 MB of synapse rows, s2emu's chip model); 4 atoms/PE fits (32 PEs, 86 in all)
        "s2gate.atoms_per_core": dict(ATOMS_PER_CORE),
    }
    meta.update(extra or {})
    return meta


def export_psnn(model, T: int, dt: float, seed: int, command: str = "", extra: Optional[Dict[str, Any]] = None):
    """The float P-SNN as a NIR graph (weights float32, thresholds θ)."""
    weights = [layer.weight.detach().cpu().numpy().astype(np.float32) for layer in model.weight_layers]
    meta = base_metadata("psnn", T, dt, seed, command, extra)
    meta["s2gate.weights_sha256"] = weights_digest(weights)
    return build_graph(weights, list(model.arch.thresholds), model.arch, meta)


def _qsnn_nodes_fallback(layer, neuron, flow_meta: Dict[str, Any]):
    """Our own implementation of the quantized-NIR contract for one (weight layer, population)."""
    import nir

    qw = layer.quant_weight()
    scale = float(qw.scale.detach().reshape(-1)[0])
    codes = qw.int().detach().cpu().numpy().astype(np.float32)
    lam = 1.0 / scale
    deq = codes * scale
    w = layer.weight.detach().cpu().numpy()
    meta = {"scale": lam, "bits": 8, "percentile": 100.0, "rounding": "brevitas", "flow": "qat",
            "clipped_fraction": float(np.mean(np.abs(w) > 127 * scale)),
            "max_abs_error": float(np.max(np.abs(deq - w))), "per_channel": False,
            "source_digest": flow_meta.get("source_digest", "")}
    if isinstance(layer.weight, object) and codes.ndim == 4:
        node = nir.Conv2d(input_shape=None, weight=codes, stride=1, padding=layer.padding[0], dilation=1,
                          groups=1, bias=np.zeros(codes.shape[0], np.float32))
    else:
        node = nir.Affine(weight=codes, bias=np.zeros(codes.shape[0], np.float32))
    node.metadata = {"s2gate.quant": dict(meta)}
    neuron = nir.IF(r=neuron.r, v_threshold=(neuron.v_threshold * lam).astype(np.float32),
                    v_reset=(neuron.v_reset * lam).astype(np.float32))
    neuron.metadata = {"s2gate.quant": dict(meta)}
    return node, neuron, lam


def export_qsnn(model, T: int, dt: float, seed: int, command: str = "", extra: Optional[Dict[str, Any]] = None):
    """The Q-SNN as a quantized NIR graph (integer codes, thresholds × λ = 1/scale).

    Uses ``harness.quantize.qat.qat_weight_node`` / ``scale_population`` when that module exists,
    else the same contract implemented here.
    """
    float_graph_weights = [layer.quant_weight().value.detach().cpu().numpy().astype(np.float32)
                           for layer in model.weight_layers]
    digest = weights_digest(float_graph_weights)
    meta = base_metadata("qsnn", T, dt, seed, command, extra)
    meta["s2gate.quant"] = {"flow": "qat", "percentile": 100.0, "source_digest": digest}
    base = build_graph(float_graph_weights, list(model.arch.thresholds), model.arch, meta)
    try:
        from harness.quantize import qat as qat_mod  # type: ignore
        have_qat = hasattr(qat_mod, "qat_weight_node") and hasattr(qat_mod, "scale_population")
    except ImportError:
        have_qat = False
    wnodes: Dict[str, Any] = {}
    nnodes: Dict[str, Any] = {}
    for wname, nname, layer in zip(WEIGHT_NODES, NEURON_NODES, model.weight_layers):
        if have_qat:
            in_hw = base.nodes[wname].input_shape if type(base.nodes[wname]).__name__ == "Conv2d" else None
            node, lam = qat_mod.qat_weight_node(layer, input_shape=in_hw, digest=digest, population=nname)
            neuron = qat_mod.scale_population(base.nodes[nname], lam, digest=digest)
        else:
            node, neuron, lam = _qsnn_nodes_fallback(layer, base.nodes[nname], {"source_digest": digest})
        if type(node).__name__ == "Conv2d":
            # keep the spatial input shape of the float graph (qat_weight_node may not know it)
            node.input_shape = base.nodes[wname].input_shape
        wnodes[wname] = node
        nnodes[nname] = neuron
    meta["s2gate.qat_module"] = "harness.quantize.qat" if have_qat else "harness.models.export"
    return build_graph(float_graph_weights, list(model.arch.thresholds), model.arch, meta,
                       weight_nodes=wnodes, neuron_nodes=nnodes)


def write_graph(graph, path: "str | os.PathLike[str]") -> None:
    """Write a NIR graph atomically: :func:`harness.quantize.format.write_graph` (the one owner)."""
    from harness.quantize.format import write_graph as _write_graph

    _write_graph(graph, path)
