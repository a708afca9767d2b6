"""Write ``harness/bundled/MODEL_CARD.md`` from measured numbers (see :mod:`harness.models.bundle`)."""
from __future__ import annotations

import datetime as _dt
from typing import Dict, List

from s2common.atomic import write_text_atomic


def _pct(v: float) -> str:
    return f"{100 * v:.2f} %"


def write_card(path: str, results: Dict[str, Dict[str, object]], seed: int) -> None:
    """Render the model card. ``results[model]``: ref_acc, torch_acc, agree, n, n_disagree,
    per_class, command, history (list of per-epoch dicts or None); see :func:`harness.models.bundle.measure`."""
    from tabulate import tabulate

    from harness.data import DEFAULT_N, DEFAULT_T
    from harness.data.standin import CLASSES, DEFAULT_CONFIG, config_dict
    from .pipeline import DEFAULT_DT

    p, q = results["psnn"], results["qsnn"]
    cmd_p, cmd_q = p["command"], q["command"]
    hist_tables = []
    for name, res in results.items():
        hist = res.get("history")
        if not hist:
            hist_tables.append(f"**{name}**: per-epoch history not recorded in this file.")
            continue
        rows = [(h["epoch"], f"{h['loss']:.4f}", f"{100 * h['train_acc']:.2f}", f"{100 * h['test_acc']:.2f}") for h in hist]
        hist_tables.append(f"**{name}**\n\n" + tabulate(rows, headers=["epoch", "loss", "train acc %", "test acc % (torch)"],
                                                        tablefmt="github"))
    per_class = tabulate([(c, _pct(a), _pct(b)) for c, a, b in zip(CLASSES, p["per_class"], q["per_class"])],
                         headers=["class", "P-SNN (reference)", "Q-SNN (reference)"], tablefmt="github")
    sensor = "\n".join(f"| `{k}` | {v} |" for k, v in config_dict(DEFAULT_CONFIG).items())
    text = f"""# Bundled models: P-SNN and Q-SNN on the DVS-gesture stand-in

Files: `psnn.nir` (float), `qsnn.nir` (quantized NIR, QAT: int8 codes, thresholds in chip units).
Accuracy numbers below: `python -m harness.models.bundle --measure-only --seed {seed}` ({_dt.date.today().isoformat()}).

## Task and data
11-class event-camera gestures (DVS Gesture's classes), from the generated stand-in
(`harness.data.standin`: simulated DVS with per-pixel threshold mismatch, refractory period,
timing jitter and background noise, watching a person-like scene; see its docstring).
Events (tonic dtype, 128×128, µs) -> tonic `Downsample` to 32×32 -> `ToFrame` into T = {DEFAULT_T} fixed
50 ms windows over the 1 s recording -> clipped to 1. Train {DEFAULT_N['train']} / test {DEFAULT_N['test']}
samples (balanced, labels `i % 11`), generator seed {seed}. The gate's default test data is
`harness.data.standin_split("test", seed={seed})` -> spikes uint8 (660, {DEFAULT_T}, 2, 32, 32).

| sensor parameter | value |
|---|---|
{sensor}

## Architecture (both models)
```
input (2,32,32) -> conv1 Conv2d 2→8 3×3 pad 1 -> if1 IF (8,32,32)        8192 neurons
 -> pool1 SumPool2d 2 -> conv2 Conv2d 8→16 3×3 pad 1 -> if2 IF (16,16,16) 4096 neurons
 -> pool2 SumPool2d 2 -> flatten (start_dim 0) -> fc1 Affine 1024→128 -> if3 IF (128)
 -> fc2 Affine 128→11 -> if4 IF (11) -> output
```
No biases. IF neurons `r = 1`, `v_reset = 0`, threshold θ = 1 (float model), reset by subtraction,
spike if `v > θ`. Semantics = the reference simulator's `spinnaker2` preset: one tick of latency
per projection, T = {DEFAULT_T} ticks, dt = {DEFAULT_DT} s (a label only: IF has no time constant).
Readout: spike count of `if4` over all T ticks, argmax, ties -> lowest index.
Graph metadata: `s2gate.preset`, `s2gate.T`, `s2gate.dt`, `s2gate.readout`, `s2gate.seed`, `s2gate.train_command`.

Chip map (s2emu's model, `graph.metadata["s2gate.atoms_per_core"] = {"if3": 4}`): 86 PEs on one chip
(if1 32, if2 16, if3 32 at 4 neurons/PE because its 1024×128 dense synapse rows overflow a PE at 250, if4 1, input 5).

Q-SNN: the same network with Brevitas `QuantConv2d`/`QuantLinear` (`Int8WeightPerTensorFloat`:
8-bit, per-tensor scale, narrow range [-127, 127]), fine-tuned with QAT from the P-SNN weights.
Exported with `harness.quantize.qat` (weights = `quant_weight().int()`, thresholds × λ = 1/scale).

## Training
```
{cmd_p}
{cmd_q}
```
Adam, cosine decay, batch 32, cross-entropy on 0.5 × spike counts, fast-sigmoid surrogate,
random ±2-pixel shifts as augmentation, torch float32 on CPU.

{(chr(10) + chr(10)).join(hist_tables)}

## Accuracy on the stand-in test split ({p['n']} samples)
| model | torch (float32) | reference simulator on the NIR file (spinnaker2 preset, float64) | NIR vs torch predictions |
|---|---|---|---|
| P-SNN (`psnn.nir`) | {_pct(p['torch_acc'])} | **{_pct(p['ref_acc'])}** | {_pct(p['agree'])} agree ({p['n_disagree']} differ) |
| Q-SNN (`qsnn.nir`) | {_pct(q['torch_acc'])} | **{_pct(q['ref_acc'])}** | {_pct(q['agree'])} agree ({q['n_disagree']} differ) |

{per_class}

Residual disagreements (if any) come from float32 (torch) vs float64 (reference) sums landing on
different sides of a threshold at exact ties.

## Emulator accuracy (filled in by the integrator from the gate)
| flow | accuracy on the emulator | loss vs float | budget | command |
|---|---|---|---|---|
| P-SNN PTQ p = 100 | _TBD_ | _TBD_ | ≤ 1.1 pp | _TBD_ |
| Q-SNN (QAT) | _TBD_ | _TBD_ | ≤ 0.6 pp vs its own float accuracy | _TBD_ |
"""
    write_text_atomic(path, text)
