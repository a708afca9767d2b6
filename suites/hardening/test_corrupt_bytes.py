"""Byte-level damage: a valid NIR file with a few random bytes overwritten is either still read
(the damage hit unused space or data) or rejected with an S2GateError — never another exception.

The HDF5 C library itself is not hardened against malformed files: some damage makes it
dereference garbage and the process dies with SIGSEGV, which no Python code can catch. So
every read here runs in a child process; a segmentation fault is reported as such. The one
reproducer found so far is kept: ``read_flat(path, isolate=True)`` turns it into an error, the
default in-process read still crashes (expected failure).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

_FLIPPER = textwrap.dedent("""
    import json, sys, warnings
    import numpy as np
    warnings.simplefilter("ignore")
    from s2common.errors import S2GateError
    from s2common.graph import read_flat
    from suites.hardening.make_corpus import carrier, write_nir

    folder, seed, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    base_path = folder + "/base.nir"
    write_nir(base_path, carrier(sys.argv[4])[0])
    base = open(base_path, "rb").read()
    rng = np.random.default_rng(seed)
    outcomes, crashes = {}, []
    for i in range(count):
        b = bytearray(base)
        for _ in range(int(rng.integers(1, 8))):
            b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
        path = folder + "/flipped.nir"
        open(path, "wb").write(bytes(b))
        try:
            read_flat(path)
            key = "read"
        except S2GateError as err:
            key = err.rule
            assert "\\n" not in str(err) and path in str(err)
        except Exception as exc:
            key = "CRASH " + type(exc).__name__
            crashes.append((i, repr(exc)[:300]))
        outcomes[key] = outcomes.get(key, 0) + 1
    print(json.dumps({"outcomes": outcomes, "crashes": crashes}))
""")


@pytest.mark.parametrize("typ", ["Conv2d", "CubaLIF"])
def test_flipped_bytes_get_an_s2gate_error(typ: str, tmp_path: Path) -> None:
    count = 3000 if os.environ.get("HYPOTHESIS_PROFILE") == "slow" else 150
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, "-c", _FLIPPER, str(tmp_path), "0", str(count), typ], capture_output=True,
                       text=True, env=env, cwd=REPO, timeout=900)
    if p.returncode == -signal.SIGSEGV:
        pytest.xfail("the HDF5 library segfaulted on a damaged file (see test_known_segfault_reproducer)")
    assert p.returncode == 0, p.stderr[-3000:]
    result = json.loads(p.stdout.strip().splitlines()[-1])
    assert not result["crashes"], result["crashes"]
    assert sum(result["outcomes"].values()) == count
    rejected = sum(v for k, v in result["outcomes"].items() if k != "read")
    assert rejected > 0, "no damage was detected at all: the test corrupts nothing"


# Found by the byte flipper (seed 1, file 2267): two bytes of the Conv2d carrier graph changed; reading the
# Input's variable-length 'type' string then segfaults inside h5py/HDF5 (h5py 3.16). Offsets are for the file
# nir 1.0.8 + h5py 3.16 write today; if the writer changes, the file no longer matches and the test skips.
_SEGV_EDITS = {8345: 34, 26531: 24}
_SEGV_BASE_SIZE = 38120


def _segv_file(tmp_path: Path) -> Path:
    from suites.hardening.make_corpus import carrier, write_nir

    base = tmp_path / "base.nir"
    write_nir(base, carrier("Conv2d")[0])
    data = bytearray(base.read_bytes())
    if len(data) != _SEGV_BASE_SIZE:
        pytest.skip(f"nir/h5py now write {len(data)} bytes, not {_SEGV_BASE_SIZE}: the reproducer's offsets no longer apply")
    for offset, value in _SEGV_EDITS.items():
        data[offset] = value
    bad = tmp_path / "segv.nir"
    bad.write_bytes(bytes(data))
    return bad


def test_isolated_loading_turns_the_segfault_into_an_error(tmp_path: Path) -> None:
    """``read_flat(path, isolate=True)`` reads the file in a child process first: the crash becomes one error."""
    from s2common.errors import InvalidGraphError
    from s2common.graph import read_flat

    bad = _segv_file(tmp_path)
    with pytest.raises(InvalidGraphError) as info:
        read_flat(bad, isolate=True)
    assert info.value.rule == "damaged-hdf5" and info.value.file == str(bad)
    assert "SIGSEGV" in str(info.value)
    read_flat(tmp_path / "base.nir", isolate=True)  # a good file passes the probe


@pytest.mark.xfail(reason="without isolate=True the HDF5 C library segfaults on this damaged file; the CLI and "
                          "the gate should load user files with read_flat(path, isolate=True) (reported)",
                   strict=False)
def test_known_segfault_reproducer(tmp_path: Path) -> None:
    bad = _segv_file(tmp_path)
    code = ("import sys; from s2common.graph import read_flat; from s2common.errors import S2GateError\n"
            "try:\n    read_flat(sys.argv[1])\nexcept S2GateError as e:\n    print(e)\n")
    p = subprocess.run([sys.executable, "-c", code, str(bad)], capture_output=True, text=True, cwd=REPO, timeout=120,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert p.returncode == 0, f"reading the damaged file killed the process (exit {p.returncode})"
