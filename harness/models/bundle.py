"""Rebuild the bundled models and their model card: ``python -m harness.models.bundle``.

Steps (each can be skipped): train the P-SNN (float) and the Q-SNN (QAT fine-tune of the P-SNN)
on the stand-in with the same code as ``s2gate train``, export both to
``harness/bundled/{psnn,qsnn}.nir``; then measure on the stand-in test split, with the reference
simulator (spinnaker2 preset) on the exported files, their accuracy and their agreement with the
torch forward pass of the same weights; write ``harness/bundled/MODEL_CARD.md``.

    python -m harness.models.bundle --measure-only     # card from the files already bundled
"""
from __future__ import annotations

import argparse
import json
import os
import time
from typing import Dict

import numpy as np

BUNDLED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bundled")


def measure(path: str, x: np.ndarray, y: np.ndarray) -> Dict[str, object]:
    """Reference accuracy of a bundled NIR file, torch accuracy of the same weights, agreement.

    The torch side rebuilds the network from the file (:func:`harness.models.pipeline.load_psnn`;
    for the quantized file that is the chip-unit network: integer weights, thresholds θ/scale).
    """
    import nir

    from .evaluate import reference_accuracy
    from .pipeline import load_psnn
    from .train import predict_all

    torch_pred = predict_all(load_psnn(path), x)
    t0 = time.time()
    acc, pred = reference_accuracy(path, x, y, progress=True)
    meta = nir.read(path).metadata
    hist = meta.get("s2gate.history")
    return {"ref_acc": acc, "torch_acc": float(np.mean(torch_pred == y)), "agree": float(np.mean(pred == torch_pred)),
            "n": int(len(y)), "n_disagree": int(np.sum(pred != torch_pred)), "seconds": time.time() - t0,
            "per_class": [float(np.mean(pred[y == c] == c)) for c in range(int(y.max()) + 1)],
            "command": str(meta.get("s2gate.train_command", "")),
            "history": json.loads(str(hist)) if hist is not None else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--qat-epochs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out-dir", default=BUNDLED)
    ap.add_argument("--skip-psnn", action="store_true", help="reuse the existing psnn.nir")
    ap.add_argument("--measure-only", action="store_true", help="no training: measure the bundled files, write the card")
    args = ap.parse_args(argv)

    import torch

    from harness.data import standin_split
    from .card import write_card
    from .pipeline import TrainRequest, run_training

    if args.threads:
        torch.set_num_threads(args.threads)
    psnn_path = os.path.join(args.out_dir, "psnn.nir")
    qsnn_path = os.path.join(args.out_dir, "qsnn.nir")
    cmd_p = (f"s2gate train --model psnn --dataset stand-in --epochs {args.epochs} --seed {args.seed} "
             f"--out harness/bundled/psnn.nir")
    cmd_q = (f"s2gate train --model qsnn --dataset stand-in --epochs {args.qat_epochs} --seed {args.seed} "
             f"--init harness/bundled/psnn.nir --out harness/bundled/qsnn.nir")
    if not args.measure_only:
        if not args.skip_psnn:
            run_training(TrainRequest(model="psnn", epochs=args.epochs, seed=args.seed, lr=2e-3, out=psnn_path,
                                      command=cmd_p, threads=args.threads), progress=True)
        run_training(TrainRequest(model="qsnn", epochs=args.qat_epochs, seed=args.seed, lr=5e-4, init=psnn_path,
                                  out=qsnn_path, command=cmd_q, threads=args.threads), progress=True)
    x, y = standin_split("test", seed=args.seed, progress=True)
    results = {"psnn": measure(psnn_path, x, y), "qsnn": measure(qsnn_path, x, y)}
    write_card(os.path.join(args.out_dir, "MODEL_CARD.md"), results, args.seed)
    for k, v in results.items():
        print(k, {kk: vv for kk, vv in v.items() if kk != "history"})
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
