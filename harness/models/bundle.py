"""Rebuild the bundled models and their model card: ``python -m harness.models.bundle``.

Trains the P-SNN (float) and the Q-SNN (QAT fine-tune of the P-SNN) on the stand-in, exports
both to ``harness/bundled/{psnn,qsnn}.nir``, measures their accuracy on the stand-in test split
with the reference simulator (spinnaker2 preset) on the exported files, the agreement of the
exported NIR with torch, and writes ``harness/bundled/MODEL_CARD.md``.

Equivalent CLI steps (what the card records)::

    s2gate train --model psnn --dataset stand-in --epochs E --seed S --out harness/bundled/psnn.nir
    s2gate train --model qsnn --dataset stand-in --epochs E2 --seed S --init harness/bundled/psnn.nir \
        --out harness/bundled/qsnn.nir
"""
from __future__ import annotations

import argparse
import os
import time
from typing import Dict

import numpy as np

BUNDLED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bundled")


def measure(path: str, x: np.ndarray, y: np.ndarray, torch_pred: np.ndarray) -> Dict[str, float]:
    """Reference-simulator accuracy of the NIR file and its agreement with the torch predictions."""
    from .evaluate import reference_accuracy

    t0 = time.time()
    acc, pred = reference_accuracy(path, x, y, progress=True)
    return {"ref_acc": acc, "agree": float(np.mean(pred == torch_pred)), "n": int(len(y)),
            "n_disagree": int(np.sum(pred != torch_pred)), "seconds": time.time() - t0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--qat-epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out-dir", default=BUNDLED)
    ap.add_argument("--skip-psnn", action="store_true", help="reuse the existing psnn.nir")
    args = ap.parse_args(argv)

    import torch

    from harness.data import standin_split
    from .card import write_card
    from .pipeline import TrainRequest, load_psnn, run_training
    from .train import predict_all

    if args.threads:
        torch.set_num_threads(args.threads)
    psnn_path = os.path.join(args.out_dir, "psnn.nir")
    qsnn_path = os.path.join(args.out_dir, "qsnn.nir")
    cmd_p = (f"s2gate train --model psnn --dataset stand-in --epochs {args.epochs} --seed {args.seed} "
             f"--out harness/bundled/psnn.nir")
    cmd_q = (f"s2gate train --model qsnn --dataset stand-in --epochs {args.qat_epochs} --seed {args.seed} "
             f"--init harness/bundled/psnn.nir --out harness/bundled/qsnn.nir")
    hist = {}
    if not args.skip_psnn:
        r = run_training(TrainRequest(model="psnn", epochs=args.epochs, seed=args.seed, lr=2e-3,
                                      out=psnn_path, command=cmd_p), progress=True)
        hist["psnn"] = r.history
    rq = run_training(TrainRequest(model="qsnn", epochs=args.qat_epochs, seed=args.seed, lr=5e-4, init=psnn_path,
                                   out=qsnn_path, command=cmd_q), progress=True)
    hist["qsnn"] = rq.history

    x, y = standin_split("test", seed=args.seed)
    psnn = load_psnn(psnn_path)
    p_torch = predict_all(psnn, x)
    q_torch = predict_all(rq.model, x)
    results = {
        "psnn": dict(measure(psnn_path, x, y, p_torch), torch_acc=float(np.mean(p_torch == y))),
        "qsnn": dict(measure(qsnn_path, x, y, q_torch), torch_acc=float(np.mean(q_torch == y))),
    }
    write_card(os.path.join(args.out_dir, "MODEL_CARD.md"), results, hist, cmd_p, cmd_q, args.seed)
    for k, v in results.items():
        print(k, v)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
