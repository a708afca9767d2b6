"""Data -> training -> NIR export, as used by ``s2gate train`` (and by the tests, in small)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

#: Tick length written into the exported graphs' metadata (s). The IF neurons have no time
#: constant, so dt only labels the tick; 50 ms = the stand-in's 1 s recording / T = 20 bins.
DEFAULT_DT = 0.05


@dataclass
class TrainRequest:
    """What to train (mirrors the ``s2gate train`` options)."""

    model: str = "psnn"                 #: "psnn" | "qsnn"
    dataset: str = "stand-in"           #: "stand-in" | "dvsgesture"
    epochs: int = 30
    seed: int = 0
    lr: float = 2e-3
    batch_size: int = 32
    T: int = 20
    n_train: Optional[int] = None
    n_test: Optional[int] = None
    init: Optional[str] = None          #: qsnn: float P-SNN NIR file to start from
    data_root: Optional[str] = None
    out: str = "model.nir"
    max_steps: Optional[int] = None
    threads: Optional[int] = None
    command: str = ""
    psnn_epochs: int = 30               #: qsnn without --init: epochs of the float pre-training
    standin: dict = field(default_factory=dict)  #: SensorConfig overrides for the stand-in


@dataclass
class TrainResult:
    history: list
    torch_acc: float
    out: str
    graph: object = None
    model: object = None


def load_data(req: TrainRequest, progress: bool = False) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) as uint8 spikes (N, T, 2, 32, 32) and int64 labels."""
    if req.dataset == "stand-in":
        import dataclasses

        from harness.data import standin_split
        from harness.data.standin import DEFAULT_CONFIG

        cfg = dataclasses.replace(DEFAULT_CONFIG, **req.standin)
        xtr, ytr = standin_split("train", seed=req.seed, n=req.n_train, T=req.T, config=cfg, progress=progress)
        xte, yte = standin_split("test", seed=req.seed, n=req.n_test, T=req.T, config=cfg, progress=progress)
    elif req.dataset == "dvsgesture":
        from harness.data.dvsgesture import load_frames

        xtr, ytr = load_frames(req.data_root, "train", T=req.T, progress=progress)
        xte, yte = load_frames(req.data_root, "test", T=req.T, progress=progress)
        if req.n_train:
            xtr, ytr = xtr[:req.n_train], ytr[:req.n_train]
        if req.n_test:
            xte, yte = xte[:req.n_test], yte[:req.n_test]
    else:
        raise ValueError(f"unknown dataset {req.dataset!r}")
    return xtr, ytr, xte, yte


def load_psnn(path: "str | os.PathLike[str]"):
    """Rebuild a :class:`PSNN` from an exported float NIR file (weights and thresholds)."""
    import nir
    import torch

    from .psnn import PSNN, Arch

    g = nir.read(str(path))
    w = [np.asarray(g.nodes[n].weight, np.float32) for n in ("conv1", "conv2", "fc1", "fc2")]
    th = tuple(float(np.asarray(g.nodes[n].v_threshold).reshape(-1)[0]) for n in ("if1", "if2", "if3", "if4"))
    in_shape = np.asarray(g.nodes["input"].input_type["input"]).tolist()
    arch = Arch(in_channels=int(in_shape[0]), in_size=int(in_shape[1]),
                conv_channels=(w[0].shape[0], w[1].shape[0]), hidden=w[2].shape[0], n_classes=w[3].shape[0],
                kernel=w[0].shape[-1], thresholds=th)
    m = PSNN(arch)
    with torch.no_grad():
        for layer, arr in zip(m.weight_layers, w):
            layer.weight.copy_(torch.from_numpy(arr))
    m.eval()
    return m


def history_json(history) -> str:
    """Per-epoch statistics as a JSON string (stored in the graph metadata as ``s2gate.history``)."""
    import json

    return json.dumps([{"epoch": h.epoch, "loss": round(h.loss, 6), "train_acc": round(h.train_acc, 6),
                        "test_acc": round(h.test_acc, 6)} for h in history])


def run_training(req: TrainRequest, progress: bool = True) -> TrainResult:
    """Train the requested model, export it to NIR (atomically) and return the history."""
    import torch

    from .export import export_psnn, export_qsnn, write_graph
    from .psnn import PSNN
    from .train import TrainConfig, evaluate, train

    if req.threads:
        torch.set_num_threads(req.threads)
    xtr, ytr, xte, yte = load_data(req, progress=progress)
    extra = {"s2gate.standin_overrides": repr(req.standin)} if req.standin else {}
    extra.update({"s2gate.dataset": req.dataset, "s2gate.epochs": req.epochs, "s2gate.n_train": int(len(ytr)),
             "s2gate.n_test": int(len(yte))})
    cfg = TrainConfig(epochs=req.epochs, batch_size=req.batch_size, lr=req.lr, seed=req.seed,
                      max_steps=req.max_steps, progress=progress)
    torch.manual_seed(req.seed)
    if req.model == "psnn":
        model = PSNN()
        history = train(model, xtr, ytr, xte, yte, cfg)
        acc = evaluate(model, xte, yte)
        extra["s2gate.torch_test_accuracy"] = acc
        extra["s2gate.history"] = history_json(history)
        graph = export_psnn(model, req.T, DEFAULT_DT, req.seed, req.command, extra)
    elif req.model == "qsnn":
        from .qsnn import QSNN

        if req.init:
            base = load_psnn(req.init)
            extra["s2gate.init"] = os.path.basename(str(req.init))
        else:
            base = PSNN()
            pre = TrainConfig(epochs=req.psnn_epochs, batch_size=req.batch_size, lr=2e-3, seed=req.seed,
                              max_steps=req.max_steps, progress=progress)
            train(base, xtr, ytr, xte, yte, pre)
        model = QSNN.from_psnn(base)
        history = train(model, xtr, ytr, xte, yte, cfg)
        acc = evaluate(model, xte, yte)
        extra["s2gate.torch_test_accuracy"] = acc
        extra["s2gate.history"] = history_json(history)
        graph = export_qsnn(model, req.T, DEFAULT_DT, req.seed, req.command, extra)
    else:
        raise ValueError(f"unknown model {req.model!r}")
    write_graph(graph, req.out)
    return TrainResult(history=history, torch_acc=acc, out=str(req.out), graph=graph, model=model)
