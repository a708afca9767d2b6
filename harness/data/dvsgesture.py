"""IBM DVS Gesture through tonic, from a local copy only (never downloads).

Expected layout (tonic 1.7's preprocessed DVS Gesture; see ../shared/design/environment.md)::

    <root>/DVSGesture/ibmGestureTrain.tar.gz          # must exist (its checksum is not verified)
    <root>/DVSGesture/ibmGestureTrain/userNN_<lighting>/<label>.npy   # (N, 4) x, y, p, t[ms]
    <root>/DVSGesture/ibmGestureTest.tar.gz
    <root>/DVSGesture/ibmGestureTest/userNN_<lighting>/<label>.npy

``root`` comes from the caller or the environment variable ``S2GATE_DVSGESTURE_ROOT``.
Sample order is sorted by (user, lighting, label) so that it does not depend on the filesystem.

Pipeline (paper-style, :class:`harness.data.transforms.FramePipeline`): optional Denoise (tonic's
semantics, compiled: :func:`harness.data.transforms.denoise`),
Downsample 128×128 -> 32×32, ToFrame(n_time_bins=T), clip to 1. Frames are cached in an npz file
keyed by the transform parameters and the list of source files (size + mtime).
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
from typing import List, Optional, Tuple

import numpy as np

from s2common.errors import DataNotFoundError

from .transforms import FramePipeline, events_to_frames

ENV_VAR = "S2GATE_DVSGESTURE_ROOT"
FOLDERS = {"train": ("ibmGestureTrain", "ibmGestureTrain.tar.gz"),
           "test": ("ibmGestureTest", "ibmGestureTest.tar.gz")}
_HOW = ("download ibmGestureTrain.tar.gz and ibmGestureTest.tar.gz (tonic's DVSGesture mirror on figshare) "
        "into <root>/DVSGesture/, extract them there, and pass --data-root <root> or set "
        f"{ENV_VAR}=<root>")


def resolve_root(root: Optional[str] = None) -> str:
    """The dataset root: ``root`` if given, else ``$S2GATE_DVSGESTURE_ROOT``."""
    root = root or os.environ.get(ENV_VAR)
    if not root:
        raise DataNotFoundError(f"no DVS Gesture location given (option --data-root or ${ENV_VAR})",
                                rule="dvsgesture-missing", hint=_HOW)
    return os.path.abspath(os.path.expanduser(root))


def sample_files(root: Optional[str], split: str) -> List[str]:
    """Sorted ``.npy`` files of ``split`` under ``root``; raises DataNotFoundError if incomplete."""
    if split not in FOLDERS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    base = os.path.join(resolve_root(root), "DVSGesture")
    folder, archive = FOLDERS[split]
    archive_path = os.path.join(base, archive)
    if not os.path.isfile(archive_path):
        raise DataNotFoundError(f"DVS Gesture {split} archive not found (tonic would try to download it)",
                                file=archive_path, rule="dvsgesture-missing", hint=_HOW)
    files = glob.glob(os.path.join(base, folder, "user*_*", "*.npy"))
    if not files:
        raise DataNotFoundError(f"DVS Gesture {split} folder has no userNN_<lighting>/<label>.npy files",
                                file=os.path.join(base, folder), rule="dvsgesture-incomplete", hint=_HOW)
    return sorted(files, key=_sort_key)


def _sort_key(path: str) -> Tuple[int, str, int]:
    user_dir = os.path.basename(os.path.dirname(path))
    user, lighting = user_dir.split("_", 1)
    label = os.path.splitext(os.path.basename(path))[0]
    try:
        return int(user[4:]), lighting, int(label)
    except ValueError:
        return 10 ** 6, user_dir, 10 ** 6


def tonic_dataset(root: Optional[str], split: str, transform=None):
    """A ``tonic.datasets.DVSGesture`` on the local copy, samples in sorted order, never downloading.

    The subclass keeps tonic's class name (tonic puts files under ``<root>/<class name>``),
    accepts any number of ``.npy`` files (tonic itself wants >= 100 before it stops
    "downloading"), and raises :class:`DataNotFoundError` instead of downloading.
    """
    import tonic

    files = sample_files(root, split)  # raises if missing
    base_root = resolve_root(root)

    class DVSGesture(tonic.datasets.DVSGesture):  # same name on purpose: tonic's folder layout
        def _check_exists(self) -> bool:  # noqa: D401
            return True

        def download(self) -> None:
            raise DataNotFoundError("DVS Gesture is not available locally", file=self.location_on_system,
                                    rule="dvsgesture-missing", hint=_HOW)

    ds = DVSGesture(save_to=base_root, train=(split == "train"), transform=transform)
    order = sorted(range(len(ds.data)), key=lambda i: _sort_key(ds.data[i]))
    ds.data = [ds.data[i] for i in order]
    ds.targets = [ds.targets[i] for i in order]
    ds.users = [ds.users[i] for i in order]
    ds.lighting = [ds.lighting[i] for i in order]
    if len(ds.data) != len(files):
        raise DataNotFoundError(f"tonic found {len(ds.data)} samples but {len(files)} .npy files exist",
                                file=os.path.join(base_root, "DVSGesture"), rule="dvsgesture-incomplete", hint=_HOW)
    return ds


def _cache_key(files: List[str], pipe: FramePipeline) -> str:
    h = hashlib.sha256(json.dumps(pipe.key(), sort_keys=True, default=str).encode())
    for f in files:
        st = os.stat(f)
        h.update(f"{f}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:20]


def load_frames(root: Optional[str] = None, split: str = "test", T: int = 20, denoise_us: Optional[float] = 10_000,
                cache_dir: Optional[str] = None, progress: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """DVS Gesture as binary frames.

    Args:
        root: dataset root (or ``$S2GATE_DVSGESTURE_ROOT``).
        split: "train" or "test".
        T: number of frames (``ToFrame(n_time_bins=T)`` over each recording's span).
        denoise_us: ``Denoise(filter_time)`` in µs, None to skip.
        cache_dir: folder of the npz frame cache (default ``<root>/DVSGesture/s2gate-cache``;
            "" disables it).

    Returns:
        spikes uint8 (N, T, 2, 32, 32) in {0, 1}, labels int64 (N,), in sorted file order.
    """
    pipe = FramePipeline(n_bins=T, denoise_us=denoise_us, window_us=None)
    files = sample_files(root, split)
    base = os.path.join(resolve_root(root), "DVSGesture")
    folder = os.path.join(base, "s2gate-cache") if cache_dir is None else cache_dir
    path = os.path.join(folder, f"{split}-{_cache_key(files, pipe)}.npz") if folder else None
    if path and os.path.exists(path):
        with np.load(path, allow_pickle=False) as z:
            return z["spikes"].astype(np.uint8), z["labels"].astype(np.int64)
    ds = tonic_dataset(root, split)
    transform = pipe.tonic_transform(denoise=False)
    # frames are built recording by recording: only one recording's events are held at a time
    x = np.zeros((len(ds), T, pipe.sensor_size[2], pipe.out_size[1], pipe.out_size[0]), dtype=np.uint8)
    labels = []
    it = range(len(ds))
    if progress:
        from tqdm import tqdm
        it = tqdm(it, desc=f"DVS Gesture {split}", unit="sample")
    for i in it:
        try:
            ev, lab = ds[i]
        except (ValueError, OSError) as exc:
            raise DataNotFoundError(f"cannot read sample: {exc}", file=ds.data[i],
                                    rule="dvsgesture-corrupt", hint="re-extract the archive") from None
        x[i] = events_to_frames(ev, pipe, transform)
        del ev
        labels.append(int(lab))
    y = np.asarray(labels, dtype=np.int64)
    if path:
        try:
            from s2common.atomic import atomic_path

            os.makedirs(folder, exist_ok=True)
            with atomic_path(path, suffix=".npz") as tmp:
                with open(tmp, "wb") as f:
                    np.savez_compressed(f, spikes=x, labels=y)
        except OSError:
            pass
    return x, y
