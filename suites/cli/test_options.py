"""One CLI language: every option has one spelling and one set of choices in every subcommand."""
from __future__ import annotations

import argparse
import re

import nir
import numpy as np
import pytest

from harness.cli import SUBCOMMANDS, build_parser, main
from harness.cli.options import RESETS, plain
from suites.fixtures import REPO

BUNDLED = REPO / "harness" / "bundled" / "psnn.nir"


def _sub(name: str) -> argparse.ArgumentParser:
    parser = build_parser(only=name)
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def _option(parser: argparse.ArgumentParser, flag: str) -> argparse.Action:
    return next(a for a in parser._actions if flag in a.option_strings)


def _options(parser: argparse.ArgumentParser) -> dict:
    return {s: a for a in parser._actions for s in a.option_strings}


def test_shared_options_have_the_same_choices_and_help_everywhere() -> None:
    """A flag that two subcommands take has the same choices and the same help text in both
    (the run/map split of --reset and --integrator was the bug: to_zero vs zero, exp vs exponential)."""
    parsers = {name: _sub(name) for name in SUBCOMMANDS}
    seen: dict = {}
    mismatched = []
    # flags whose meaning differs on purpose between subcommands (what is seeded, what is written)
    per_command = {"--seed", "--out", "-o", "--model", "--dataset", "--backend", "--batch", "--ticks", "--json",
                   "--epochs", "--data-root", "-h", "--help", "--percentile", "--batch-size"}
    for name, p in parsers.items():
        for flag, action in _options(p).items():
            if flag in per_command:
                continue
            key = (tuple(action.choices) if action.choices else None, action.help)
            if flag in seen and seen[flag][1] != key:
                mismatched.append((flag, seen[flag][0], name))
            seen.setdefault(flag, (name, key))
    assert mismatched == []
    # the two the issue names, explicitly
    for flag in ("--reset", "--integrator"):
        assert _option(parsers["run"], flag).choices == _option(parsers["map"], flag).choices
    assert tuple(_option(parsers["run"], "--reset").choices) == ("subtract", "to_v_reset", "to_zero")


@pytest.mark.parametrize("command", ["run", "map"])
@pytest.mark.parametrize("spelling, canonical", [("to_zero", "to_zero"), ("zero", "to_zero"),
                                                 ("TO_ZERO", "to_zero"), ("to_v_reset", "to_v_reset"),
                                                 ("subtract", "subtract")])
def test_reset_spellings_are_accepted_by_run_and_map(command: str, spelling: str, canonical: str) -> None:
    args = _sub(command).parse_args([str(BUNDLED), "--reset", spelling, "--integrator", "forward"])
    assert (args.reset, args.integrator) == (canonical, "euler")


def test_emulator_reset_to_zero_and_to_v_reset_lower_alike() -> None:
    """py-spinnaker2's reset_to_v_reset resets to 0 (its converter drops NIR's v_reset), so both
    spellings give the same ConversionOptions; the reference keeps them apart."""
    from harness.cli.options import conversion_options

    p = _sub("map")
    a = conversion_options(p.parse_args([str(BUNDLED), "--reset", "to_zero"]))
    b = conversion_options(p.parse_args([str(BUNDLED), "--reset", "to_v_reset"]))
    assert a.reset == b.reset == "to_v_reset"
    assert RESETS("zero") == "to_zero"


def test_wrong_choice_is_one_argparse_error(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["map", str(BUNDLED), "--reset", "to-nowhere"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("s2gate map: error: argument --reset: invalid choice") and "to_zero" in err


@pytest.mark.parametrize("argv", [["--version"], ["--version", "map"], ["map", "--version"],
                                  ["gate", "--version"], ["quantize", "--version"]])
def test_version_anywhere(argv, capsys) -> None:
    from importlib import metadata

    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("s2gate ") and f"nir {metadata.version('nir')}" in out


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_before_or_after_the_subcommand_shows_the_traceback(where: str, tmp_path) -> None:
    missing = str(tmp_path / "missing.nir")
    argv = ["--debug", "map", missing] if where == "before" else ["map", missing, "--debug"]
    from s2common.errors import S2GateError

    with pytest.raises(S2GateError):
        main(argv)
    assert main(["map", missing]) == 2  # without --debug: one line, exit 2


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_help_is_plain_words(command: str) -> None:
    text = _sub(command).format_help()
    assert not re.search(r"``|:(func|class|mod|meth|attr):`|\S::\s", text), text
    assert "--debug" in text and "--version" in text


def test_plain_strips_restructuredtext() -> None:
    doc = "Run ``s2gate map`` (see :func:`~harness.cli.options.conversion_options`, :mod:`s2emu`). Example::\n\n    x\n"
    assert plain(doc) == "Run s2gate map (see conversion_options, s2emu). Example:\n\n    x"


def test_vectors_out_existing_file_is_one_line(tmp_path, run_s2gate) -> None:
    """As a newcomer: `s2gate vectors m.nir --out notes.txt` (a file) -> exit 2, one line naming it, no traceback."""
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me")
    proc = run_s2gate("vectors", BUNDLED, "--out", existing, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("s2gate vectors: error: [output-is-file]") and str(existing) in lines[0]
    assert "Traceback" not in proc.stderr and existing.read_text() == "keep me"


def test_output_below_a_file_fails_before_any_work(tmp_path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["sweep", "--out", str(blocker / "sweep.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("s2gate sweep: error: [cannot-write]") and str(blocker) in err[0]


def test_run_reads_the_gates_npz_key(tmp_path, capsys) -> None:
    """`run --input x.npz` takes the array 'spikes', the key the gate's .npz datasets use."""
    graph = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([3])),
                                "w": nir.Linear(weight=np.eye(3, dtype=np.float32) * 2),
                                "n": nir.IF(r=np.ones(3, np.float32), v_threshold=np.ones(3, np.float32),
                                            v_reset=np.zeros(3, np.float32)),
                                "output": nir.Output(output_type=np.array([3]))},
                         edges=[("input", "w"), ("w", "n"), ("n", "output")])
    model = tmp_path / "m.nir"
    nir.write(model, graph)
    spikes = np.zeros((2, 5, 3), dtype=bool)
    spikes[0, 1, 0] = spikes[1, 2, 2] = spikes[1, 3, 2] = True
    # a second array that is not the input: only the key picks the right one
    np.savez(tmp_path / "x.npz", spikes=spikes, labels=np.array([0, 2]))
    assert main(["run", str(model), "--input", str(tmp_path / "x.npz")]) == 0
    rows = {ln.split()[0]: ln.split() for ln in capsys.readouterr().out.splitlines() if ln.split()}
    assert rows["input"][3] == "3"  # the three input spikes, counted by hand above


def test_hints_name_the_flag_of_the_interface_in_use() -> None:
    from harness import flags

    before = flags.interface()
    try:
        flags.use_interface("cli")
        assert flags.flag("board-host") == flags.flag("--s2-board-host") == "--board-host"
        flags.use_interface("pytest")
        assert flags.flag("board-host") == flags.flag("--board-host") == "--s2-board-host"
        with pytest.raises(ValueError):
            flags.use_interface("gui")
    finally:
        flags.use_interface(before)


def test_the_cli_speaks_cli_flags_inside_a_pytest_session(monkeypatch, capsys) -> None:
    """The plugin set the interface to pytest for this session; main() speaks CLI while it runs
    (a hint raised inside it names --board-host) and hands pytest its own spelling back."""
    from harness import flags
    from harness.cli import map as map_cli
    from s2common.errors import InputDataError

    assert flags.interface() == "pytest"

    def fails(args):
        raise InputDataError("no board", rule="no-board", hint=f"pass {flags.flag('board-host')} IP")

    monkeypatch.setattr(map_cli, "run", fails)
    assert main(["map", str(BUNDLED)]) == 2
    assert "(hint: pass --board-host IP)" in capsys.readouterr().err
    assert flags.interface() == "pytest"
