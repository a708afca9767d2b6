"""Training loop for the P-SNN / Q-SNN (surrogate gradients, cross-entropy on spike counts).

Loss: cross-entropy of ``counts · beta`` (counts = output spike counts over T ticks; beta a
fixed inverse temperature). Adam, cosine learning-rate decay, seeded (torch, numpy).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

from .psnn import predict


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run."""

    epochs: int = 20
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.0
    beta: float = 0.5  #: inverse temperature of the softmax over spike counts
    seed: int = 0
    max_steps: Optional[int] = None  #: stop after this many optimiser steps (smoke tests)
    shift: int = 2  #: augmentation: random translation by up to this many pixels (0 = off)
    progress: bool = True


@dataclass
class EpochStats:
    epoch: int
    loss: float
    train_acc: float
    test_acc: float
    seconds: float


def evaluate(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 128) -> float:
    """Accuracy (fraction) of ``model`` on spikes (N, T, 2, H, W) with labels (N,)."""
    preds = predict_all(model, x, batch_size)
    return float(np.mean(preds == y)) if len(y) else float("nan")


@torch.no_grad()
def counts_all(model: torch.nn.Module, x: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """Output spike counts (N, n_classes) of ``model`` in eval mode (float32 forward)."""
    model.eval()
    out = []
    for i in range(0, len(x), batch_size):
        out.append(model(torch.from_numpy(np.asarray(x[i:i + batch_size])).float()).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def predict_all(model: torch.nn.Module, x: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """Predicted classes (N,) int64 (argmax of counts, ties -> lowest index)."""
    c = counts_all(model, x, batch_size)
    return predict(torch.from_numpy(c)).numpy().astype(np.int64)


def random_shift(x: torch.Tensor, max_shift: int, rng: np.random.Generator) -> torch.Tensor:
    """Translate each sample of (batch, T, C, H, W) by a random (dy, dx) in [-max_shift, max_shift], zero fill."""
    B, T, C, H, W = x.shape
    p = max_shift
    padded = F.pad(x, (p, p, p, p))
    out = torch.empty_like(x)
    offs = rng.integers(0, 2 * p + 1, size=(B, 2))
    for b in range(B):
        dy, dx = int(offs[b, 0]), int(offs[b, 1])
        out[b] = padded[b, :, :, dy:dy + H, dx:dx + W]
    return out


def train(model: torch.nn.Module, x_train: np.ndarray, y_train: np.ndarray,
          x_test: Optional[np.ndarray] = None, y_test: Optional[np.ndarray] = None,
          config: TrainConfig = TrainConfig(),
          on_epoch: Optional[Callable[[EpochStats], None]] = None) -> List[EpochStats]:
    """Train ``model`` in place; returns per-epoch statistics (loss, train/test accuracy)."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    n = len(x_train)
    steps_per_epoch = max(1, math.ceil(n / config.batch_size))
    total = steps_per_epoch * config.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    history: List[EpochStats] = []
    step = 0
    for epoch in range(1, config.epochs + 1):
        t0 = time.time()
        model.train()
        order = rng.permutation(n)
        batches = range(steps_per_epoch)
        bar = None
        if config.progress:
            from tqdm import tqdm
            bar = tqdm(batches, desc=f"epoch {epoch}/{config.epochs}", unit="batch", leave=False)
            batches = bar
        losses, correct, seen = [], 0, 0
        for b in batches:
            idx = order[b * config.batch_size:(b + 1) * config.batch_size]
            xb = torch.from_numpy(np.asarray(x_train[idx])).float()
            if config.shift:
                xb = random_shift(xb, config.shift, rng)
            yb = torch.from_numpy(np.asarray(y_train[idx])).long()
            counts = model(xb)
            loss = F.cross_entropy(counts * config.beta, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            losses.append(float(loss.detach()))
            correct += int((predict(counts.detach()) == yb).sum())
            seen += len(idx)
            if bar is not None:
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", acc=f"{correct / seen:.3f}")
            if config.max_steps is not None and step >= config.max_steps:
                break
        test_acc = evaluate(model, x_test, y_test) if x_test is not None else float("nan")
        stats = EpochStats(epoch, float(np.mean(losses)), correct / max(seen, 1), test_acc, time.time() - t0)
        history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
        if config.max_steps is not None and step >= config.max_steps:
            break
    model.eval()
    return history
