"""Test vectors for a board run: inputs, the quantized model, the emulator's expected recording.

A vector set is a folder::

    inputs.h5      NIR data format (nir.write_data): the Input node's spikes as TimeGriddedData,
                   (batch, time, neurons) with the input shape in an s2gate attribute;
                   readable with Recording.load or nir.read_data
    model.nir      the quantized graph the board must run (int8 codes, s2gate.quant metadata)
    expected.h5    the emulator's recording of model.nir on inputs.h5 (Recording.save), all nodes,
                   spikes + voltages + integer inputs
    vectors.json   manifest: seed, density, percentile, conversion options, shapes, and the
                   sha256 of each file above (written last: a folder without it is incomplete)

Every file is written atomically. On the board side: ``BoardBackend(host).run(model.nir,
inputs)`` and ``s2gate compare expected.h5 board.h5``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np

from s2common.atomic import write_text_atomic
from s2common.errors import InputDataError, QuantizationError, S2GateError
from s2common.recording import Recording

MANIFEST = "vectors.json"
FILES = {"inputs": "inputs.h5", "model": "model.nir", "expected": "expected.h5"}
FORMAT_VERSION = 1


@dataclass
class VectorSet:
    """A written (or loaded) vector set.

    Attributes:
        folder: where it lives.
        manifest: the content of ``vectors.json``.
        inputs: (batch, time, *input_shape) bool.
        expected: the emulator's recording.
        graph: the quantized nir.NIRGraph.
    """

    folder: Path
    manifest: Dict[str, Any]
    inputs: np.ndarray
    expected: Recording
    graph: Any

    def path(self, what: str) -> Path:
        return self.folder / FILES[what]


def sha256_file(path: "str | os.PathLike[str]") -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def random_inputs(input_shape: Tuple[int, ...], *, batch: int, ticks: int, seed: int, density: float) -> np.ndarray:
    """Bernoulli(density) spikes, (batch, ticks, *input_shape) bool, from ``numpy.random.default_rng(seed)``."""
    if not 0.0 <= density <= 1.0:
        raise InputDataError(f"spike density must be in [0, 1], got {density}", rule="bad-density")
    if batch < 1 or ticks < 1:
        raise InputDataError(f"batch and ticks must be >= 1, got batch={batch}, ticks={ticks}", rule="bad-size")
    rng = np.random.default_rng(seed)
    return rng.random((batch, ticks, *input_shape)) < density


def load_inputs(path: "str | os.PathLike[str]", input_shape: Tuple[int, ...], input_node: str = "input") -> np.ndarray:
    """Input spikes (batch, time, *input_shape) bool from ``.npy``, ``.npz`` or a NIR data file (``.h5``);
    a (time, *input_shape) array is one sample. :func:`harness.run.inputs.load_inputs` with ``spikes=True``."""
    from .run.inputs import load_inputs as _load

    return _load(path, input_shape, input_node, spikes=True)


def write_vectors(
    model: Any,
    out_dir: "str | os.PathLike[str]",
    *,
    inputs: Optional[np.ndarray] = None,
    batch: int = 4,
    ticks: int = 100,
    seed: int = 0,
    density: float = 0.05,
    percentile: float = 100.0,
    quantized: bool = False,
    options: Any = None,
    engine: str = "fast",
    source: Optional[str] = None,
) -> VectorSet:
    """Write a vector set for ``model`` into ``out_dir`` (created if needed).

    Args:
        model: a NIR file path or nir.NIRGraph. Float unless ``quantized``.
        inputs: (batch, time, *input_shape) spikes; None -> :func:`random_inputs` with
            ``batch``, ``ticks``, ``seed``, ``density``.
        percentile: PTQ percentile (ignored when ``quantized``).
        quantized: the model is already quantized (s2gate.quant metadata required).
        options: ``s2emu.ConversionOptions`` (default :func:`harness.run.emulator_options` of the
            quantized graph: weight scaling off, the model's ``s2gate.dt``).
        engine: emulator engine for ``expected.h5``.
    """
    from s2common.graph import flatten_graph, load_graph

    from .quantize import is_quantized, quantize_ptq, write_graph
    from .run import EmulatorBackend, emulator_options

    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        source = os.fspath(model)
        graph = load_graph(model)
    else:
        graph = model
    if quantized:
        if not is_quantized(graph):
            raise QuantizationError("the model has no s2gate.quant metadata, so it is not a quantized graph",
                                    file=source, rule="not-quantized",
                                    hint="drop --quantized to quantize it (PTQ), or quantize it with s2gate quantize")
        qgraph = graph
    else:
        qgraph = quantize_ptq(graph, percentile=percentile, source=source).graph
    flat = flatten_graph(qgraph, file=source)
    in_name = flat.inputs[0]
    in_shape = tuple(flat.input_shape)
    if inputs is None:
        x = random_inputs(in_shape, batch=batch, ticks=ticks, seed=seed, density=density)
        origin = "random"
    else:
        x = np.asarray(inputs)
        if x.shape[2:] != in_shape or x.ndim != len(in_shape) + 2:
            raise InputDataError(f"inputs have shape {x.shape}, expected (batch, time, {', '.join(map(str, in_shape))})",
                                 rule="input-shape")
        x = x.astype(bool)
        origin = "given"
    if options is None:
        options = emulator_options(qgraph)
    backend = EmulatorBackend(options=options, engine=engine)
    expected = backend.run(qgraph, x, record="all")
    expected.meta.update({"backend": "emulator", "engine": engine, "vectors": True})

    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    # an old manifest must not vouch for a half-rewritten set: drop it first, write the new one last
    (folder / MANIFEST).unlink(missing_ok=True)
    inputs_rec = Recording(dt=float(getattr(options, "dt", expected.dt)), meta={"input": in_name, "seed": seed})
    inputs_rec.add(in_name, "spikes", x)
    inputs_rec.save(folder / FILES["inputs"])
    write_graph(qgraph, folder / FILES["model"])
    expected.save(folder / FILES["expected"])
    manifest = {
        "format": "s2gate-vectors",
        "version": FORMAT_VERSION,
        "s2gate_version": _version(),
        "model_source": source,
        "input_node": in_name,
        "input_shape": list(in_shape),
        "batch": int(x.shape[0]),
        "ticks": int(x.shape[1]),
        "inputs": origin,
        "seed": seed if origin == "random" else None,
        "density": density if origin == "random" else None,
        "quantization": "given" if quantized else {"flow": "ptq", "percentile": percentile},
        "options": _options_dict(options),
        "engine": engine,
        "nodes": expected.nodes,
        "files": {k: {"path": v, "sha256": sha256_file(folder / v)} for k, v in FILES.items()},
    }
    write_text_atomic(folder / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    return VectorSet(folder=folder, manifest=manifest, inputs=x, expected=expected, graph=qgraph)


def load_vectors(folder: "str | os.PathLike[str]", *, verify: bool = True) -> VectorSet:
    """Read a vector set; with ``verify``, every file's sha256 must match the manifest."""
    from s2common.graph import load_graph

    folder = Path(folder)
    man_path = folder / MANIFEST
    if not man_path.exists():
        raise InputDataError("no vectors.json: not a (complete) vector set", file=str(folder), rule="no-manifest",
                             hint="write one with s2gate vectors MODEL.nir --out DIR")
    try:
        manifest = json.loads(man_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InputDataError(f"vectors.json is not valid JSON ({exc})", file=str(man_path), rule="bad-manifest") from exc
    if verify:
        for key, entry in manifest.get("files", {}).items():
            p = folder / entry["path"]
            if not p.exists():
                raise InputDataError(f"{key} file is missing", file=str(p), rule="vectors-incomplete")
            if sha256_file(p) != entry["sha256"]:
                raise InputDataError(f"{key} file does not match its sha256 in vectors.json", file=str(p),
                                     rule="vectors-digest", hint="the file was changed after the vectors were written")
    inputs_rec = Recording.load(folder / FILES["inputs"])
    x = inputs_rec.spikes(manifest["input_node"]).astype(bool)
    return VectorSet(folder=folder, manifest=manifest, inputs=x, expected=Recording.load(folder / FILES["expected"]),
                     graph=load_graph(folder / FILES["model"]))


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("s2gate")
    except Exception:  # not installed (running from a checkout)
        return "unknown"


def _options_dict(options: Any) -> Dict[str, Any]:
    if dataclasses.is_dataclass(options):
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(options).items()}
    return {"repr": repr(options)}
