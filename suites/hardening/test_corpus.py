"""The bad-input corpus: every file gets one clear error of s2gate's own type.

For each file of ``make_corpus`` (ids = file names) and each way in (the loader, ``s2gate run``,
``s2gate map``, ``s2gate quantize``), the error must be an :class:`~s2common.errors.S2GateError`
whose rule is one the case accepts and whose message names the file and (for node-level
defects) the node or edge. The CLI must exit 2 with exactly one line on stderr and no traceback.
What each file got is printed as a table at the end of the run (see ``conftest.py``).
"""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import List, Optional, Tuple

import pytest

from s2common.errors import S2GateError
from suites.hardening.summary import record_result
from suites.hardening.make_corpus import Case, build_corpus, cases

CASES = cases()
LOAD = [c for c in CASES if c.stage == "load"]
VALID_NIR = [c for c in CASES if c.stage != "load"]
DEPLOY = [c for c in CASES if c.stage == "deploy"]


def _ids(cs: List[Case]) -> List[str]:
    return [c.name for c in cs]


def names_node(err_node: Optional[str], expected: Optional[str]) -> bool:
    """``expected`` is the error's node, or one end of the edge ``"a -> b"`` it names."""
    if expected is None:
        return True
    if err_node is None:
        return False
    return err_node == expected or expected in [p.strip() for p in err_node.split("->")]


def check_error(err: S2GateError, case: Case, path: Path) -> None:
    """The assertions every corpus error must pass."""
    text = str(err)
    assert "\n" not in text, text
    assert err.file is not None and os.path.samefile(err.file, path), f"error does not name the file: {text}"
    if case.rules:
        assert err.rule in case.rules, f"rule {err.rule!r} not in {case.rules}: {text}"
    assert names_node(err.node, case.node), f"error names node {err.node!r}, expected {case.node!r}: {text}"
    assert f"[{err.rule}]" in text and str(path) in text


# --------------------------------------------------------------------------- the loader

@pytest.mark.parametrize("case", LOAD, ids=_ids(LOAD))
def test_loader_rejects(case: Case, corpus_dir: Path) -> None:
    from s2common.graph import read_flat

    path = corpus_dir / case.name
    try:
        read_flat(path)
    except S2GateError as err:
        record_result(case.name, "read_flat", f"{type(err).__name__}: {err}")
        check_error(err, case, path)
    except BaseException as exc:  # an unhandled exception is the bug this suite exists to find
        record_result(case.name, "read_flat", f"CRASH {type(exc).__name__}: {exc}")
        raise AssertionError(f"{case.name}: unhandled {type(exc).__name__}\n{traceback.format_exc()}") from exc
    else:
        record_result(case.name, "read_flat", "LOADED (no error)")
        pytest.fail(f"{case.name} ({case.what}) loaded without an error")


@pytest.mark.parametrize("case", VALID_NIR, ids=_ids(VALID_NIR))
def test_valid_nir_loads(case: Case, corpus_dir: Path) -> None:
    """Deploy/quantized/input cases are valid NIR: the loader must not reject them (their error comes later)."""
    from s2common.graph import read_flat

    flat = read_flat(corpus_dir / case.name)
    assert flat.inputs and flat.outputs


def test_every_parameter_kind_is_poisoned() -> None:
    """NaN and inf reach every numeric parameter of every node type (the list is derived from nir, not typed in)."""
    from suites.hardening.make_corpus import CARRIER_TYPES, _numeric_params

    names = {c.name for c in CASES}
    kinds = set()
    for typ in CARRIER_TYPES:
        for param in _numeric_params(typ):
            kinds.add(param)
            for label in ("nan", "inf"):
                assert f"{label}_{typ.lower()}_{param}.nir" in names
    for must in ("weight", "bias", "tau", "r", "v_threshold", "v_leak", "v_reset", "w_in", "tau_syn", "tau_mem",
                 "threshold", "delay", "scale", "stride", "padding", "kernel_size", "shape"):
        assert must in kinds, must


def test_corpus_is_deterministic(tmp_path: Path) -> None:
    """Two generations of (a sample of) the corpus are byte-identical (no randomness, no HDF5 timestamps)."""
    sample = ["not_hdf5.nir", "truncated.nir", "nan_lif_tau.nir", "string_weight.nir", "stateless_cycle.nir",
              "nan_input.nir", "quantized_non_integer.nir"]
    a = build_corpus(tmp_path / "a", only=sample)
    build_corpus(tmp_path / "b", only=sample)
    assert len(a) == len(sample)
    for name in sample:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


# --------------------------------------------------------------------------- the command line

#: Defects found in files this suite does not own, reported to their owners; the check xfails
#: (not strict) until they are fixed.
KNOWN_BUGS: dict = {}  # (file, command) -> reason; empty: every corpus file gets its one-line error

def _has_command(name: str) -> bool:
    from harness.cli import SUBCOMMANDS

    try:
        mod = importlib.import_module(SUBCOMMANDS[name][0])
    except ModuleNotFoundError:
        return False
    return hasattr(mod, "run")


def run_cli(argv: List[str], capsys: pytest.CaptureFixture) -> Tuple[int, str, str]:
    from harness.cli import main

    capsys.readouterr()
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def check_cli_error(case: Case, path: Path, command: str, rc: int, err: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, f"exit code {rc}, stderr: {err!r}"
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {err!r}"
    line = lines[0]
    assert "Traceback" not in err
    assert line.startswith(f"s2gate {command}: error: ["), line
    if case.rules:
        assert any(f"[{r}]" in line for r in case.rules), f"none of the rules {case.rules} in: {line}"
    if case.stage in ("load", "quantized") or case.node:
        assert str(path) in line, f"the file is not named: {line}"
    if case.stage == "input" and f"{path}.input.npy" not in line:
        known = KNOWN_BUGS.get((case.name, command))
        if known:
            pytest.xfail(known)
        raise AssertionError(f"the input file is not named: {line}")
    if case.node:
        assert f"'{case.node}" in line or f"{case.node}'" in line or f" {case.node} " in line, \
            f"node {case.node!r} not named: {line}"


def _cli_case(case: Case, path: Path, command: str, argv: List[str], capsys: pytest.CaptureFixture,
              out_file: Optional[Path] = None) -> None:
    try:
        rc, _, err = run_cli(argv, capsys)
    except SystemExit as exc:  # argparse
        record_result(case.name, f"s2gate {command}", f"SystemExit {exc.code}")
        raise
    except BaseException as exc:
        record_result(case.name, f"s2gate {command}", f"CRASH {type(exc).__name__}: {exc}")
        raise AssertionError(f"s2gate {' '.join(argv)}: unhandled {type(exc).__name__}\n{traceback.format_exc()}") from exc
    record_result(case.name, f"s2gate {command}", f"exit {rc}: {' | '.join(err.strip().splitlines())}")
    try:
        check_cli_error(case, path, command, rc, err)
    except AssertionError:
        known = KNOWN_BUGS.get(("*", command))
        if not known:
            raise
        # the known defect only: without the timing line the error must be right
        import re

        rest = "\n".join(line for line in err.splitlines() if not re.fullmatch(r"s2gate \w+: [\d.]+ s", line.strip()))
        check_cli_error(case, path, command, rc, rest)
        pytest.xfail(known)
    if out_file is not None:
        assert not out_file.exists(), "a failed command left an output file behind"
        leftovers = [p.name for p in out_file.parent.iterdir() if p.name.startswith(".tmp-")]
        assert not leftovers, leftovers


#: exceeds_chip is a valid graph the emulator may well simulate (a board has 48 chips); `map` must reject it.
RUN_CASES = [c for c in CASES if c.name != "exceeds_chip.nir"]


@pytest.mark.parametrize("case", RUN_CASES, ids=_ids(RUN_CASES))
def test_cli_run(case: Case, corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``s2gate run`` rejects every file (deploy and quantized cases on the emulator backend)."""
    if not _has_command("run"):
        pytest.skip("s2gate run is not available yet")
    path = corpus_dir / case.name
    out = tmp_path / "rec.h5"
    argv = ["run", str(path), "--ticks", "5", "--batch", "2", "--seed", "0", "--out", str(out)]
    backend = case.backend or ("emulator" if case.stage in ("deploy", "quantized") else "reference")
    argv += ["--backend", backend]
    if case.stage == "input":
        argv += ["--input", str(path) + ".input.npy"]
    _cli_case(case, path, "run", argv, capsys, out_file=out)


#: two_inputs.nir: the loader and the reference reject it, but py-spinnaker2's converter makes one spike_list per
#: Input, so ``s2gate map`` accepts it (suites/emulator/test_vendor_cli.py).
MAP_CASES = [c for c in CASES if c.stage in ("load", "deploy") and c.name != "two_inputs.nir"]


@pytest.mark.parametrize("case", MAP_CASES, ids=_ids(MAP_CASES))
def test_cli_map(case: Case, corpus_dir: Path, capsys: pytest.CaptureFixture) -> None:
    """``s2gate map`` rejects every invalid file (exit 2, one line); a valid graph that cannot be deployed
    is a verdict, not an error: exit 1 and the failing design rule named, with its node, on stdout."""
    if not _has_command("map"):
        pytest.skip("s2gate map is not available yet")
    path = corpus_dir / case.name
    if case.stage == "load":
        _cli_case(case, path, "map", ["map", str(path)], capsys)
        return
    rc, out, err = run_cli(["map", str(path)], capsys)
    errors = [line.strip() for line in out.splitlines() if line.strip().startswith("error: [")]
    record_result(case.name, "s2gate map", f"exit {rc}: {' | '.join(errors)}")
    assert rc == 1, (rc, out, err)
    assert "Traceback" not in out + err and not err.strip()
    hits = [e for e in errors if any(e.startswith(f"error: [{r}]") for r in case.rules)]
    assert hits, f"none of {case.rules} among {errors}"
    if case.node:
        assert any(names_node(_quoted_node(e), case.node) for e in hits), hits


def test_design_rules_name_a_registered_rule(corpus_dir: Path) -> None:
    """Through the API: every deploy case gets violations whose rules are registered in ``s2emu.rules.RULES``."""
    rules = pytest.importorskip("s2emu.rules")
    from s2common.graph import read_flat

    for case in DEPLOY:
        violations = rules.check_design_rules(read_flat(corpus_dir / case.name))
        errors = [v for v in violations if getattr(v, "severity", "error") == "error"]
        assert errors, case.name
        assert all(v.rule in rules.RULES for v in violations), [v.rule for v in violations]
        assert any(v.rule in case.rules for v in errors), (case.name, [v.rule for v in errors])


def _quoted_node(line: str) -> Optional[str]:
    """The node of a ``[rule] ... node 'x': ...`` line."""
    marker = "node '"
    if marker not in line:
        return None
    rest = line.split(marker, 1)[1]
    return rest.split("'", 1)[0]


QUANT_CASES = [c for c in LOAD]


@pytest.mark.parametrize("case", QUANT_CASES, ids=_ids(QUANT_CASES))
def test_cli_quantize(case: Case, corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``s2gate quantize`` rejects every invalid file and writes nothing."""
    if not _has_command("quantize"):
        pytest.skip("s2gate quantize is not available yet")
    path = corpus_dir / case.name
    out = tmp_path / "q.nir"
    _cli_case(case, path, "quantize", ["quantize", str(path), "-o", str(out)], capsys, out_file=out)


GATE_CLI_CASES = ["not_hdf5.nir", "truncated.nir", "nan_lif_tau.nir", "stateless_cycle.nir", "string_weight.nir"]


@pytest.mark.parametrize("name", GATE_CLI_CASES)
def test_cli_gate(name: str, corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``s2gate gate --model BAD.nir``: exit 2 and the error on one stderr line (the table goes to stdout)."""
    if not _has_command("gate"):
        pytest.skip("s2gate gate is not available yet")
    import numpy as np

    case = next(c for c in CASES if c.name == name)
    path = corpus_dir / name
    data = tmp_path / "data.npz"
    np.savez(data, spikes=np.zeros((2, 3, 3), dtype=bool), labels=np.zeros(2, dtype=np.int64))
    _cli_case(case, path, "gate", ["gate", "--model", str(path), "--qat-model", "none", "--dataset", str(data),
                                   "--quiet", "--no-report"], capsys)


SUBPROCESS_CASES = ["not_hdf5.nir", "truncated.nir", "nan_lif_tau.nir", "shapes_do_not_chain.nir",
                    "stateless_cycle.nir"]


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_cli_subprocess_one_line(name: str, corpus_dir: Path) -> None:
    """The real console entry point: exit 2 and one stderr line; ``--debug`` shows the traceback instead."""
    if not _has_command("run"):
        pytest.skip("s2gate run is not available yet")
    case = next(c for c in CASES if c.name == name)
    path = corpus_dir / name
    cmd = [sys.executable, "-m", "harness", "run", str(path), "--ticks", "3", "--seed", "1"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    check_cli_error(case, path, "run", p.returncode, p.stderr)
    d = subprocess.run([sys.executable, "-m", "harness", "--debug", "run", str(path), "--ticks", "3"],
                       capture_output=True, text=True, timeout=120)
    assert d.returncode != 0
    assert "Traceback (most recent call last)" in d.stderr
    assert f"[{case.rules[0]}]" in d.stderr or any(f"[{r}]" in d.stderr for r in case.rules)


# --------------------------------------------------------------------------- the gate and its pytest plugin

GATE_CASES = [c for c in CASES if c.stage in ("load", "deploy")]


@pytest.mark.parametrize("case", GATE_CASES, ids=_ids(GATE_CASES))
def test_gate_evaluation_fails_with_the_message(case: Case, corpus_dir: Path) -> None:
    """What the plugin's checks report, computed in-process for every file: the evaluation never raises,
    and each failing check carries the corpus error (rule and file) as its one-line message."""
    pytest.importorskip("harness.gate.evaluate")
    import numpy as np

    from harness.gate.checks import FAIL, run_checks
    from harness.gate.config import GateConfig
    from harness.gate.evaluate import evaluate

    path = corpus_dir / case.name
    cfg = GateConfig(model=str(path), qat_model=None, sweep=(), progress=False)
    shape: tuple = (3,)  # a bad file never gets as far as the data
    if case.stage != "load":
        from s2common.graph import read_flat

        shape = read_flat(path).input_shape
    data = (np.zeros((2, 4, *shape), dtype=bool), np.zeros(2, dtype=np.int64))
    try:
        ev = evaluate(cfg, data=data)
        checks = run_checks(ev)
    except BaseException as exc:
        record_result(case.name, "gate", f"CRASH {type(exc).__name__}: {exc}")
        raise AssertionError(f"the gate's evaluation raised on {case.name}\n{traceback.format_exc()}") from exc
    failed = [c for c in checks if c.verdict == FAIL]
    record_result(case.name, "gate", f"{len(failed)} failed: {failed[0].message if failed else '-'}")
    assert failed, f"no check failed on {case.name} ({case.what})"
    for check in failed:
        assert "\n" not in check.message
    if case.stage == "load":
        for check in failed:
            assert str(path) in check.message, check.message
            assert any(f"[{r}]" in check.message for r in case.rules), check.message
    else:
        assert any(f"[{r}]" in c.message or r in c.message for c in failed for r in case.rules), \
            [c.message for c in failed]


PLUGIN_CASES = ["not_hdf5.nir", "nan_lif_tau.nir", "shapes_do_not_chain.nir", "exceeds_chip.nir"]


@pytest.mark.slow
@pytest.mark.parametrize("name", PLUGIN_CASES)
def test_pytest_plugin_fails_checks_not_internally(name: str, corpus_dir: Path, tmp_path: Path) -> None:
    """``pytest --pyargs harness.gate.suite --s2-model BAD.nir``: failed checks naming the error (exit 1),
    no INTERNALERROR, no Python traceback."""
    pytest.importorskip("harness.gate.suite")
    import numpy as np

    case = next(c for c in CASES if c.name == name)
    path = corpus_dir / name
    data = tmp_path / "data.npz"
    shape = {"exceeds_chip.nir": (1, 96, 96)}.get(name, (3,))
    np.savez(data, spikes=np.zeros((2, 3, *shape), dtype=bool), labels=np.zeros(2, dtype=np.int64))
    cmd = [sys.executable, "-m", "pytest", "--pyargs", "harness.gate.suite", "--s2-model", str(path),
           "--s2-qat-model", "none", "--s2-dataset", str(data), "-p", "no:cacheprovider", "-q"]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    out = p.stdout + p.stderr
    record_result(name, "pytest plugin", f"exit {p.returncode}: " + next(
        (line for line in out.splitlines() if line.startswith("FAILED ") and "[" in line), "(no FAILED line)"))
    assert p.returncode == 1, out[-3000:]
    assert "INTERNALERROR" not in out and "Traceback (most recent call last)" not in out, out[-3000:]
    failed = [line for line in out.splitlines() if line.startswith("FAILED ") and ": " in line]
    assert failed, out[-3000:]
    assert any(f"[{r}]" in line for line in failed for r in case.rules), failed


# --------------------------------------------------------------------------- bad options on a good model

BAD_OPTIONS = [
    ["--ticks", "0"], ["--batch", "-1"], ["--density", "nan"], ["--density", "2"], ["--record", "ghost"],
    ["--dt", "0"], ["--dt", "nan"], ["--preset", "foo"],
    ["--backend", "emulator", "--percentile", "0"], ["--backend", "emulator", "--conn-delay", "100"],
    ["--backend", "emulator", "--dt", "-1"],
    ["--batch", "100000000", "--ticks", "100000000"],  # 3e16 values: refused before any allocation
]


@pytest.mark.parametrize("options", BAD_OPTIONS, ids=lambda o: " ".join(o))
def test_cli_run_bad_options(options: List[str], corpus_dir: Path, capsys: pytest.CaptureFixture) -> None:
    """Nonsense option values on a valid model: exit 2, one line naming the option's problem."""
    if not _has_command("run"):
        pytest.skip("s2gate run is not available yet")
    path = corpus_dir / "nan_input.nir"  # the graph itself is valid
    try:
        rc, _, err = run_cli(["run", str(path), *options], capsys)
    except BaseException as exc:
        raise AssertionError(f"s2gate run {' '.join(options)}: unhandled {type(exc).__name__}") from exc
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("s2gate run: error: ["), err
