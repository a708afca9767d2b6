"""The report's plots (matplotlib, Agg backend), each a function of the evaluation's JSON dict
returning PNG bytes (deterministic: no timestamps in the files), or None when there is nothing to draw.

Accuracy against PTQ percentile; per-layer spike rates float vs int8; per-layer weight memory;
the first divergence's raster; the weight codes of each layer against the int8 grid; the
confusion matrices float vs int8.
"""
from __future__ import annotations

import io
from typing import Any, Dict, List, Optional


def _figure(width: float = 6.4, height: float = 3.6):
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def plot_accuracy_vs_percentile(ev: Dict[str, Any]) -> Optional[bytes]:
    """PTQ accuracy on the emulator against the weight-scale percentile, with the float accuracy
    and the budget line. None if no sweep was run."""
    sweep = ev.get("sweep") or []
    if not sweep:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    ps = [s["percentile"] for s in sweep]
    accs = [s["accuracy"] for s in sweep]
    x = list(range(len(ps)))
    ax.plot(x, accs, "o-", color="tab:blue", label="PTQ on emulator")
    for xi, a in zip(x, accs):
        ax.annotate(f"{a:.2f}", (xi, a), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    acc = ev.get("accuracy") or {}
    if acc.get("float") is not None:
        ax.axhline(acc["float"], color="tab:green", ls="--", label=f"float {acc['float']:.2f} %")
        budget = ev.get("config", {}).get("ptq_budget")
        if budget is not None:
            ax.axhline(acc["float"] - budget, color="tab:red", ls=":", label=f"float - {budget:g} pp budget")
    ax.set_xticks(x, [f"{p:g}" for p in ps])
    ax.set_xlabel("weight-scale percentile p (λ = 127 / percentile_p |W|)")
    ax.set_ylabel("accuracy (%)")
    n = (sweep[0].get("samples") if sweep else None) or ev.get("data", {}).get("samples")
    ax.set_title(f"PTQ accuracy against percentile ({n} samples)")
    ax.margins(y=0.15)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def plot_spike_rates(ev: Dict[str, Any]) -> Optional[bytes]:
    """Per-layer spike rates (spikes per neuron per tick), float reference vs int8 emulator,
    for the PTQ model and (if present) the Q-SNN."""
    layers = ev.get("layers") or {}
    panels = [(k, v) for k, v in (("ptq", layers.get("ptq")), ("qat", layers.get("qat"))) if v]
    if not panels:
        return None
    import numpy as np

    fig = _figure(6.4, 3.2 * len(panels))
    titles = {"ptq": "P-SNN: float (reference) vs PTQ int8 (emulator)",
              "qat": "Q-SNN: float (reference, dequantized) vs int8 (emulator)"}
    for i, (flow, rows) in enumerate(panels):
        ax = fig.add_subplot(len(panels), 1, i + 1)
        names = [r["name"] for r in rows]
        xf = np.arange(len(names))
        rf = [r.get("rate_float") or 0.0 for r in rows]
        ri = [r.get("rate_int8") or 0.0 for r in rows]
        ax.bar(xf - 0.2, rf, 0.4, label="float", color="tab:green")
        ax.bar(xf + 0.2, ri, 0.4, label="int8", color="tab:blue")
        ax.set_xticks(xf, names, rotation=20, fontsize=8)
        ax.set_ylabel("spikes / neuron / tick")
        ax.set_title(titles[flow], fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def plot_memory(ev: Dict[str, Any]) -> Optional[bytes]:
    """Per-layer weight memory, float32 vs int8 bytes (log scale), with the reduction."""
    mem = ev.get("memory") or {}
    rows = mem.get("layers") or []
    if not rows:
        return None
    import numpy as np

    fig = _figure()
    ax = fig.add_subplot()
    names = [r["name"] for r in rows]
    x = np.arange(len(names))
    f32 = [max(r["float32_bytes"], 1) for r in rows]
    i8 = [max(r["int8_bytes"], 1) for r in rows]
    ax.bar(x - 0.2, f32, 0.4, label="float32", color="tab:orange")
    ax.bar(x + 0.2, i8, 0.4, label="int8", color="tab:blue")
    for xi, r in zip(x, rows):
        ax.annotate(f"-{100 * r.get('reduction', 0):.0f}%", (xi, max(r["float32_bytes"], 1)), textcoords="offset points",
                    xytext=(0, 3), ha="center", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylim(top=max(f32) * 4)  # room for the reduction labels
    ax.set_xticks(x, names, rotation=20, fontsize=8)
    ax.set_ylabel("bytes")
    ax.set_title(f"weight memory per layer: {mem.get('float32_bytes', 0):,} B -> {mem.get('int8_bytes', 0):,} B "
                 f"({100 * mem.get('reduction', 0):.1f} % less)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def plot_divergence_raster(ev: Dict[str, Any]) -> Optional[bytes]:
    """Raster (tick x neuron) of one layer around the first divergence: emulator spikes, reference
    spikes, and the divergence marked. With no divergence, the output layer of the first sample."""
    r = ev.get("raster")
    if not r:
        return None
    fig = _figure(8.0, 4.0)
    ax = fig.add_subplot()
    emu = r.get("emulator") or []
    ref = r.get("reference") or []
    if emu:
        ax.scatter([t for t, _ in emu], [n for _, n in emu], marker="|", s=60, color="tab:blue", label="emulator")
    if ref:
        ax.scatter([t for t, _ in ref], [n for _, n in ref], marker="_", s=60, color="tab:red", label="reference")
    div = r.get("divergence")
    if div:
        ax.scatter([div[0]], [div[1]], marker="o", s=160, facecolors="none", edgecolors="black", linewidths=1.5,
                   label=f"first divergence (tick {div[0]}, neuron {div[1]})")
    from matplotlib.ticker import MaxNLocator

    ax.set_xlim(r["ticks"][0] - 0.5, r["ticks"][1] - 0.5)
    ax.set_ylim(r["neurons"][0] - 0.5, r["neurons"][1] - 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("tick")
    ax.set_ylabel("neuron (flat index)")
    title = r.get("title") or f"layer '{r.get('layer')}', sample {r.get('sample')}"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.2)
    return _png(fig)


def plot_weight_histograms(ev: Dict[str, Any]) -> Optional[bytes]:
    """Per weight node, the histogram of its codes on the int8 grid [-127, 127] (log counts),
    PTQ and Q-SNN side by side, with the grid's ends marked: codes piled at ±127 were clipped,
    a narrow histogram uses few of the 255 levels."""
    import numpy as np
    from matplotlib.ticker import FuncFormatter, NullFormatter

    quant = ev.get("quantization") or {}
    flows = [f for f in ("ptq", "qat") if quant.get(f)]
    if not flows:
        return None
    n = max(len(quant[f]) for f in flows)
    fig = _figure(4.0 * len(flows), 1.9 * n + 0.6)
    grid = np.arange(-127, 128)
    titles = {"ptq": "PTQ", "qat": "Q-SNN"}
    for j, flow in enumerate(flows):
        for i, layer in enumerate(quant[flow]):
            ax = fig.add_subplot(n, len(flows), i * len(flows) + j + 1)
            h = np.asarray(layer["histogram"] or [0] * 255)
            ax.bar(grid, h, width=1.0, color="tab:blue" if flow == "ptq" else "tab:purple")
            for edge in (-127, 127):
                ax.axvline(edge, color="tab:red", lw=0.8, ls=":")
            used = int(np.count_nonzero(h))
            extra = f", {layer['outside']} beyond ±127" if layer.get("outside") else ""
            ax.set_title(f"{titles[flow]} '{layer['layer']}': {used} of 255 codes used{extra}", fontsize=8)
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.set_xlim(-135, 135)
            ax.tick_params(labelsize=7)
            if i == n - 1:
                ax.set_xlabel("int8 code", fontsize=8)
    return _png(fig)


def plot_confusion(ev: Dict[str, Any]) -> Optional[bytes]:
    """Confusion matrices (rows: true class, columns: predicted), float vs int8 for each flow."""
    import numpy as np

    conf = ev.get("confusion") or {}
    panels = [(f, k) for f in ("ptq", "qat") for k in ("float", "int8") if k in (conf.get(f) or {})]
    if not panels:
        return None
    names = {("ptq", "float"): "P-SNN float (reference)", ("ptq", "int8"): "PTQ int8 (emulator)",
             ("qat", "float"): "Q-SNN float (reference)", ("qat", "int8"): "Q-SNN int8 (emulator)"}
    cols = 2
    rows = (len(panels) + 1) // 2
    fig = _figure(7.0, 3.3 * rows)
    for i, (flow, kind) in enumerate(panels):
        m = np.asarray(conf[flow][kind])
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(m, cmap="Blues")
        k = m.shape[0]
        if k <= 12:
            for (r, c), v in np.ndenumerate(m):
                if v:
                    ax.text(c, r, str(v), ha="center", va="center", fontsize=6,
                            color="white" if v > m.max() / 2 else "black")
        ax.set_xticks(range(k))
        ax.set_yticks(range(k))
        ax.tick_params(labelsize=6)
        acc = 100.0 * np.trace(m) / max(m.sum(), 1)
        ax.set_title(f"{names[(flow, kind)]}: {acc:.2f} %", fontsize=8)
        ax.set_xlabel("predicted", fontsize=7)
        ax.set_ylabel("true", fontsize=7)
    return _png(fig)


PLOT_FUNCTIONS = {"accuracy_vs_percentile": plot_accuracy_vs_percentile, "spike_rates": plot_spike_rates,
                  "memory": plot_memory, "divergence_raster": plot_divergence_raster,
                  "weight_histograms": plot_weight_histograms, "confusion": plot_confusion}
PLOTS = tuple(PLOT_FUNCTIONS)


def make_plots(ev: Dict[str, Any]) -> Dict[str, bytes]:
    """name -> PNG bytes for each plot the evaluation has data for."""
    out: Dict[str, bytes] = {}
    for name, fn in PLOT_FUNCTIONS.items():
        png = fn(ev)
        if png is not None:
            out[name] = png
    return out


PLOT_CAPTIONS = {
    "accuracy_vs_percentile": "PTQ accuracy on the emulator against the weight-scale percentile",
    "spike_rates": "Per-layer spike rates, float vs int8",
    "memory": "Per-layer weight memory, float32 vs int8",
    "divergence_raster": "First divergence between emulator and reference",
    "weight_histograms": "Weight codes per layer against the int8 grid",
    "confusion": "Confusion matrices, float vs int8",
}


