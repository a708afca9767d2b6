"""DVS Gesture through tonic, on tiny files written in tonic's on-disk layout by the test."""
from __future__ import annotations

import numpy as np
import pytest

from s2common.errors import DataNotFoundError

pytest.importorskip("tonic")

from harness.data.dvsgesture import ENV_VAR, load_frames, sample_files, tonic_dataset  # noqa: E402


def _events(n, x, y, p, t0_ms=0, t1_ms=1000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(t0_ms, t1_ms, n))
    t[0], t[-1] = t0_ms, t1_ms
    return np.stack([np.full(n, x), np.full(n, y), np.full(n, p), t], 1).astype(np.int64)


def write_layout(root, split="Train"):
    """root/DVSGesture/ibmGesture<Split>.tar.gz + ibmGesture<Split>/userNN_<lighting>/<label>.npy."""
    base = root / "DVSGesture"
    (base / f"ibmGesture{split}").mkdir(parents=True)
    (base / f"ibmGesture{split}.tar.gz").write_bytes(b"")
    files = {("user02_led", 1): (120, 8, 1), ("user01_fluorescent", 3): (4, 100, 0),
             ("user01_fluorescent", 0): (64, 64, 1), ("user10_lab", 2): (0, 0, 0)}
    for (user, label), (x, y, p) in files.items():
        d = base / f"ibmGesture{split}" / user
        d.mkdir(exist_ok=True)
        np.save(d / f"{label}.npy", _events(50, x, y, p, seed=label))
    return files


@pytest.fixture(autouse=True)
def no_download(monkeypatch):
    import tonic

    def fail(*a, **k):  # pragma: no cover - the test fails if reached
        raise AssertionError("tried to download")

    monkeypatch.setattr(tonic.datasets.DVSGesture, "download", fail)
    monkeypatch.delenv(ENV_VAR, raising=False)


def test_loads_tiny_copy_in_sorted_order(tmp_path):
    write_layout(tmp_path, "Train")
    x, y = load_frames(str(tmp_path), "train", T=4, denoise_us=None, cache_dir="")
    # sorted by (user number, lighting, label): user01 label 0, user01 label 3, user02 label 1, user10 label 2
    assert y.tolist() == [0, 3, 1, 2]
    assert x.shape == (4, 4, 2, 32, 32) and x.dtype == np.uint8
    # every sample's only pixel is (x // 4, y // 4) with its polarity, present in every bin
    for i, (px, py, p) in enumerate([(64, 64, 1), (4, 100, 0), (120, 8, 1), (0, 0, 0)]):
        on = np.argwhere(x[i].any(0))
        assert on.tolist() == [[p, py // 4, px // 4]]
        assert x[i, :, p, py // 4, px // 4].tolist() == [1, 1, 1, 1]


def test_environment_variable_and_cache(tmp_path, monkeypatch):
    write_layout(tmp_path, "Test")
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    cache = tmp_path / "cache"
    x1, y1 = load_frames(None, "test", T=3, denoise_us=None, cache_dir=str(cache))
    assert len(list(cache.glob("test-*.npz"))) == 1
    x2, y2 = load_frames(None, "test", T=3, denoise_us=None, cache_dir=str(cache))
    assert x1.tobytes() == x2.tobytes() and np.array_equal(y1, y2)


def test_tonic_dataset_time_in_microseconds(tmp_path):
    write_layout(tmp_path, "Train")
    ds = tonic_dataset(str(tmp_path), "train")
    ev, label = ds[0]
    assert label == 0
    assert ev["t"].max() == 1_000_000  # tonic converts ms to µs


def test_denoise_drops_isolated_events(tmp_path):
    write_layout(tmp_path, "Train")
    # an isolated single event is dropped by Denoise; the dense pixels of write_layout survive
    d = tmp_path / "DVSGesture" / "ibmGestureTrain" / "user03_led"
    d.mkdir()
    t = np.arange(0, 1000)  # ms: two neighbouring pixels firing alternately every ms
    ev = np.stack([64 + t % 2, np.full_like(t, 64), np.ones_like(t), t], 1)
    ev = np.concatenate([ev, [[10, 10, 0, 500]]])
    ev = ev[np.argsort(ev[:, 3], kind="stable")]
    np.save(d / "5.npy", ev)
    x, y = load_frames(str(tmp_path), "train", T=2, denoise_us=5_000, cache_dir="")
    i = y.tolist().index(5)
    assert x[i, :, 0, 10 // 4, 10 // 4].sum() == 0
    assert x[i, :, 1, 16, 16].sum() >= 1


def test_missing_root_is_one_clear_error():
    with pytest.raises(DataNotFoundError) as err:
        sample_files(None, "train")
    assert ENV_VAR in str(err.value)


def test_missing_archive_names_the_expected_path(tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        load_frames(str(tmp_path), "train", cache_dir="")
    msg = str(err.value)
    assert "ibmGestureTrain.tar.gz" in msg and str(tmp_path) in msg and "hint" in msg


def test_archive_without_extracted_files_is_incomplete(tmp_path):
    base = tmp_path / "DVSGesture"
    base.mkdir()
    (base / "ibmGestureTest.tar.gz").write_bytes(b"")
    with pytest.raises(DataNotFoundError) as err:
        load_frames(str(tmp_path), "test", cache_dir="")
    assert err.value.rule == "dvsgesture-incomplete"


def test_dvsgesture_split_is_load_frames(tmp_path):
    from harness.data import dvsgesture_split

    write_layout(tmp_path, "Test")
    x, y = dvsgesture_split("test", root=str(tmp_path), T=2, denoise_us=None, cache_dir="")
    assert x.shape == (4, 2, 2, 32, 32) and y.tolist() == [0, 3, 1, 2]
