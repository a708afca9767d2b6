"""A dataset is checked before anything is evaluated on it.

The gate's data is ``spikes`` (N, T, *input_shape) of 0/1 and ``labels`` (N,) of class indices
(N samples, T ticks, ``input_shape`` the NIR Input node's shape per tick). A dataset that is
not that is refused with one :class:`~s2common.errors.InputDataError` naming the file, the rule
and what to do, instead of a traceback from deep inside the simulators or a PASS at 0 %:

====================  ===========================================================================
rule                  refused when
====================  ===========================================================================
``bad-dataset``       ``spikes`` has fewer than 3 axes, N = 0 or T = 0, N differs from the labels'
``non-finite-input``  ``spikes`` holds NaN or inf
``event-counts``      ``spikes`` holds non-negative integers above 1 (event counts per bin, what
                      tonic's ``ToFrame`` gives); ``binarize`` (``--binarize``) thresholds ``x > 0``
``not-spikes``        ``spikes`` holds anything else than 0/1 (negative or fractional values)
``bad-labels``        labels are not integers (an integral float array is accepted)
``label-out-of-range``  a label is < 0 or >= the model's number of classes
``bad-input``         the per-tick shape differs from the model's Input shape
====================  ===========================================================================

:func:`check_dataset` checks arrays; :func:`precheck` loads the configured ``.npz`` and the
models' Input shape and class count first, so the command line and the pytest plugin refuse
bad data before the evaluation starts. :func:`chance_level` is what a model that guesses
must beat (the report warns when the float model does not).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from s2common.errors import InputDataError

#: How many offending values an error message lists.
_SHOW = 5


@dataclass
class CheckedData:
    """Data that passed :func:`check_dataset`.

    Attributes:
        spikes: bool (N, T, *input_shape).
        labels: int64 (N,).
        notes: what was done to the data on the way (e.g. binarized counts), for the report.
    """

    spikes: np.ndarray
    labels: np.ndarray
    notes: List[str] = field(default_factory=list)
    binarized: bool = False


def _flag(name: str) -> str:
    from harness.flags import flag

    return flag(name)


def _values(arr: np.ndarray) -> str:
    vals = np.unique(arr)
    shown = ", ".join(f"{v:g}" if isinstance(v, (float, np.floating)) else str(v) for v in vals[:_SHOW])
    return shown + (", ..." if vals.size > _SHOW else "")


def check_dataset(spikes: Any, labels: Any, *, file: Optional[str] = None, n_classes: Optional[int] = None,
                  input_shape: Optional[Sequence[int]] = None, binarize: bool = False) -> CheckedData:
    """Check (and with ``binarize`` clean) a dataset; raise :class:`InputDataError` if it is not spikes.

    Args:
        spikes: (N, T, *input_shape) array of 0/1 (bool or numbers).
        labels: (N,) class indices.
        file: the dataset's file, named in every error.
        n_classes: the model's number of classes (output neurons); labels must be in [0, n_classes).
        input_shape: the model's Input shape per tick; ``spikes.shape[2:]`` must equal it.
        binarize: accept counts / non-negative values and threshold them, ``x > 0`` -> 1.

    Returns:
        :class:`CheckedData` with bool spikes, int64 labels and the notes for the report.
    """
    spikes = np.asarray(spikes)
    labels = np.asarray(labels)
    notes: List[str] = []
    if spikes.ndim < 3:
        raise InputDataError(f"spikes have shape {spikes.shape}; expected (N, T, *input_shape)", file=file,
                             rule="bad-dataset", hint="add the sample axis N (and the tick axis T) in front")
    if labels.ndim != 1:
        if labels.size == spikes.shape[0]:
            labels = labels.reshape(-1)
        else:
            raise InputDataError(f"labels have shape {labels.shape}; expected ({spikes.shape[0]},), one per sample",
                                 file=file, rule="bad-dataset")
    n, t = int(spikes.shape[0]), int(spikes.shape[1])
    if n == 0 or t == 0:
        raise InputDataError(f"spikes have shape {spikes.shape}: {n} samples of {t} ticks; need N > 0 and T > 0",
                             file=file, rule="bad-dataset")
    if labels.shape[0] != n:
        raise InputDataError(f"{n} samples of spikes but {labels.shape[0]} labels", file=file, rule="bad-dataset",
                             hint="spikes (N, T, ...) and labels (N,) must have the same N")
    if input_shape is not None and tuple(spikes.shape[2:]) != tuple(int(s) for s in input_shape):
        want = ", ".join(str(int(s)) for s in input_shape)
        raise InputDataError(f"spikes have {tuple(spikes.shape[2:])} per tick but the model's Input takes "
                             f"({want})", file=file, rule="bad-input",
                             hint=f"use spikes of shape (N, T, {want})")
    spikes, notes_s, binarized = _check_spikes(spikes, file, binarize)
    notes.extend(notes_s)
    labels = _check_labels(labels, file, n_classes)
    return CheckedData(spikes=spikes, labels=labels, notes=notes, binarized=binarized)


def _check_spikes(spikes: np.ndarray, file: Optional[str], binarize: bool) -> Tuple[np.ndarray, List[str], bool]:
    if spikes.dtype == bool:
        return spikes, [], False
    if spikes.dtype.kind not in "iuf":
        raise InputDataError(f"spikes have dtype {spikes.dtype}; use bool or numbers 0/1", file=file, rule="not-spikes")
    if spikes.dtype.kind == "f" and not np.isfinite(spikes).all():
        bad = int(np.count_nonzero(~np.isfinite(spikes)))
        raise InputDataError(f"spikes hold {bad} NaN or inf value(s)", file=file, rule="non-finite-input",
                             hint="spikes are 0/1 per input neuron and tick")
    binary = (spikes == 0) | (spikes == 1)
    if binary.all():
        return spikes != 0, [], False
    odd = spikes[~binary]
    counts = bool((odd > 1).all() and (odd == np.round(odd)).all())
    share = odd.size / spikes.size
    if binarize and bool((odd > 0).all()):
        note = (f"binarized ({_flag('binarize')}): {odd.size} of {spikes.size} values ({100 * share:.2f} %) were above 1 "
                f"(max {odd.max():g}) and became 1 (x > 0 -> 1)")
        return spikes > 0, [note], True
    if counts:
        raise InputDataError(f"spikes hold event counts, not 0/1: {odd.size} values ({100 * share:.2f} %) are above 1 "
                             f"(values {_values(odd)}; max {odd.max():g}), as tonic's ToFrame gives", file=file,
                             rule="event-counts", hint=f"{_flag('binarize')} turns them into spikes (x > 0 -> 1), or "
                                                       f"clip them to 1 yourself")
    raise InputDataError(f"spikes must be 0/1, but {odd.size} values ({100 * share:.2f} %) are not (values "
                         f"{_values(odd)})", file=file, rule="not-spikes",
                         hint=f"SpiNNaker2's input is a spike or none per neuron and tick; threshold the data "
                              f"yourself ({_flag('binarize')} does x > 0 -> 1 for non-negative values)")


def _check_labels(labels: np.ndarray, file: Optional[str], n_classes: Optional[int]) -> np.ndarray:
    if labels.dtype.kind == "f":
        if not (np.isfinite(labels).all() and (labels == np.round(labels)).all()):
            raise InputDataError(f"labels must be class indices (integers), got {labels.dtype} values like "
                                 f"{_values(labels[~np.isfinite(labels) | (labels != np.round(labels))])}",
                                 file=file, rule="bad-labels")
    elif labels.dtype.kind not in "iub":
        raise InputDataError(f"labels must be class indices (integers), got dtype {labels.dtype}", file=file,
                             rule="bad-labels")
    labels = labels.astype(np.int64)
    if n_classes is not None:
        bad = (labels < 0) | (labels >= int(n_classes))
        if bad.any():
            raise InputDataError(f"{int(bad.sum())} of {labels.size} labels are outside the model's {int(n_classes)} "
                                 f"classes 0..{int(n_classes) - 1} (values {_values(labels[bad])})", file=file,
                                 rule="label-out-of-range",
                                 hint="labels are class indices of the model's output neurons; renumber them "
                                      "or check that this is the model's dataset")
    elif (labels < 0).any():
        raise InputDataError(f"labels must be >= 0 (values {_values(labels[labels < 0])})", file=file,
                             rule="label-out-of-range")
    return labels


def chance_level(labels: np.ndarray, n_classes: Optional[int]) -> float:
    """Accuracy in percent of the best guess without looking at the input: the larger of
    ``100 / n_classes`` and the share of the most frequent label."""
    labels = np.asarray(labels).reshape(-1)
    uniform = 100.0 / n_classes if n_classes else 0.0
    if labels.size == 0:
        return uniform
    majority = 100.0 * np.bincount(labels.astype(np.int64).clip(0)).max() / labels.size
    return float(max(uniform, majority))


def model_classes(flat: Any) -> int:
    """Number of classes of a flattened graph: the neurons of the population its Output reads."""
    from harness.gate.evaluate import output_population

    return int(np.prod(flat.out_shape[output_population(flat)], dtype=np.int64))


def model_shape(path: Optional[str]) -> Tuple[Optional[Tuple[int, ...]], Optional[int]]:
    """(Input shape per tick, number of classes = size of the output population) of a NIR file;
    (None, None) when it cannot be read (its own section reports that)."""
    if not path:
        return None, None
    try:
        from s2common.graph import flatten_graph, load_graph

        graph = load_graph(path, isolate=True)
        flat = flatten_graph(graph, file=path)
        return tuple(int(s) for s in flat.input_shape), model_classes(flat)
    except Exception:  # noqa: BLE001 - the model's own section reports why it cannot be read
        return None, None


def precheck(config: Any) -> Optional[CheckedData]:
    """Check the configured ``.npz`` dataset against the models before the evaluation.

    ``config`` is a :class:`~harness.gate.config.GateConfig`. Only a user's ``.npz`` file is
    checked here (the stand-in and DVS Gesture are checked by :func:`check_dataset` when the
    evaluation loads them). Raises :class:`InputDataError` naming the file
    (:class:`~s2common.errors.DataNotFoundError` when it does not exist).
    """
    path = str(config.dataset)
    if path in ("stand-in", "dvsgesture"):
        return None
    if not os.path.exists(path):
        from s2common.errors import DataNotFoundError

        raise DataNotFoundError(f"dataset '{path}' not found", file=path,
                                hint=f"use {_flag('dataset')} stand-in, dvsgesture, or a .npz with arrays 'spikes' "
                                     "and 'labels'")
    if not os.path.isfile(path):
        return None
    shape, classes = model_shape(config.model)
    if shape is None:
        shape, classes = model_shape(config.qat_model)
    try:
        with np.load(path, allow_pickle=False) as f:
            if not {"spikes", "labels"} <= set(getattr(f, "files", ())):
                return None  # the loader names the missing array
            spikes, labels = f["spikes"], f["labels"]
    except Exception:  # noqa: BLE001 - the loader reports an unreadable file with its reason
        return None
    if config.samples:
        spikes, labels = spikes[: config.samples], labels[: config.samples]
    return check_dataset(spikes, labels, file=path, n_classes=classes, input_shape=shape,
                         binarize=bool(getattr(config, "binarize", False)))
