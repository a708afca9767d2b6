"""One spelling for every ``s2gate`` option: the argument builders all subcommands share.

Every option that more than one subcommand takes is declared here once, with one spelling,
one set of choices (old spellings accepted as aliases) and one help text, so ``--reset
to_zero`` means the same in ``run`` and ``map`` and ``--integrator`` offers the same values.

How to add an option (do it once, here, and every subcommand that takes it gets it):

1. Find the builder of its group below (``add_conversion_arguments``, ``add_input_arguments``,
   ``add_data_arguments``, ``add_budget_arguments``, ``add_atoms_arguments``,
   ``add_engine_argument``, ``add_percentile_argument``, ``add_profile_argument``,
   ``add_report_arguments``) or write a
   new ``add_<group>_arguments(parser, ...)`` next to them.
2. Declare the flag there: kebab-case, a ``help=`` in plain words that ends with the default,
   choices as a module-level :class:`Choices` (canonical values plus old spellings as aliases),
   output paths typed :func:`output_file` or :func:`output_dir` (checked before any work,
   one-line error).
3. Call the builder from each subcommand's ``add_parser`` and read ``args.<dest>`` in its
   ``run``. A subcommand never re-declares a flag a builder declares.
4. If the pytest plugin takes the same setting, spell it ``--s2-<flag>``, take its default from
   the same place (a :class:`~harness.gate.config.GateConfig` field) and name it in hints with
   :func:`harness.flags.flag`, which returns the spelling of the interface in use.

``--debug`` and ``--version`` need nothing: :func:`harness.cli.build_parser` adds them to the
top level and to every subcommand (:func:`add_global_arguments`).

Help texts are plain words: :func:`plain` turns a module docstring (reStructuredText) into
the text ``--help`` shows.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple


# ----------------------------------------------------------------------------- choices

@dataclass(frozen=True, eq=False)
class Choices:
    """The values one option accepts: canonical ``values`` and ``aliases`` (old spellings).

    Used as argparse ``type=`` (it maps an alias to its canonical value, case-insensitively)
    together with ``choices=values``, so ``--help`` lists the canonical values only and a
    wrong value gets argparse's one-line "invalid choice" error (exit 2).
    """

    values: Tuple[str, ...]
    aliases: Mapping[str, str] = field(default_factory=dict)

    def __call__(self, text: str) -> str:
        key = str(text).strip()
        for cand in (key, key.lower(), key.lower().replace("-", "_")):
            if cand in self.values:
                return cand
            if cand in self.aliases:
                return self.aliases[cand]
        return key  # argparse then reports "invalid choice ... (choose from ...)"

    @property
    def __name__(self) -> str:  # argparse names the type in some messages
        return "choice"

    def kwargs(self) -> Dict[str, Any]:
        """``type=`` and ``choices=`` for ``add_argument``."""
        return {"type": self, "choices": self.values}


#: Reset after a spike. The reference distinguishes all three; on the emulator (py-spinnaker2's
#: converter) ``to_v_reset`` resets to 0, so ``to_zero`` and ``to_v_reset`` are the same there.
RESETS = Choices(("subtract", "to_v_reset", "to_zero"), {"zero": "to_zero", "reset_to_zero": "to_zero",
                                                          "v_reset": "to_v_reset", "sub": "subtract"})
#: RESETS value -> s2emu ConversionOptions.reset
EMULATOR_RESET = {"subtract": "subtract", "to_v_reset": "to_v_reset", "to_zero": "to_v_reset"}
#: Membrane integrator: forward Euler (alpha = 1 - dt/tau) or exact exponential (alpha = exp(-dt/tau)).
INTEGRATORS = Choices(("euler", "exp"), {"forward": "euler", "forward_euler": "euler", "exponential": "exp"})
#: Emulator engines: the fast batched engine or the scalar golden model (same bits).
ENGINES = Choices(("fast", "golden"))
#: PTQ rounding.
ROUNDINGS = Choices(("nearest", "truncate"), {"round": "nearest", "trunc": "truncate"})
#: Data splits.
SPLITS = Choices(("test", "train"))


# ----------------------------------------------------------------------------- paths

def _blocking_file(folder: str) -> Optional[str]:
    """The nearest existing ancestor of ``folder`` (itself included) if it is a file, else None."""
    cur = os.path.abspath(folder)
    while not os.path.exists(cur):
        parent = os.path.dirname(cur)
        if parent == cur:
            return None
        cur = parent
    return None if os.path.isdir(cur) else cur


def output_file(text: str) -> str:
    """argparse type of an output file, checked before any work is done.

    An existing folder, or a path below a file, raises :class:`~s2common.errors.OutputError`
    (one line from the dispatcher, exit 2, as the atomic writer would after the work). A
    missing parent folder is fine (it is created when the file is written).
    """
    from s2common.errors import OutputError

    if os.path.isdir(text):
        raise OutputError("is a directory; give a file name to write to", file=text, rule="output-is-directory")
    blocker = _blocking_file(os.path.dirname(os.path.abspath(text)))
    if blocker:
        raise OutputError(f"cannot write into {os.path.dirname(os.path.abspath(text))} ({blocker} is a file)",
                          file=text, hint="choose a writable folder")
    return text


def output_dir(text: str) -> str:
    """argparse type of an output folder: an existing file (or a path below one) raises
    :class:`~s2common.errors.OutputError`; a missing folder is created later."""
    from s2common.errors import OutputError

    if os.path.exists(text) and not os.path.isdir(text):
        raise OutputError("exists and is a file, not a folder", file=text, rule="output-is-file",
                          hint="give a folder (it is created if missing), or remove the file")
    blocker = _blocking_file(text)
    if blocker:
        raise OutputError(f"cannot make the folder ({blocker} is a file)", file=text, hint="choose a writable folder")
    return text


# ----------------------------------------------------------------------------- help text

_ROLE = re.compile(r":[a-z]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`")
_LITERAL = re.compile(r"``([^`]*)``")


def plain(doc: Optional[str]) -> str:
    """A module docstring (reStructuredText) as plain help text.

    ``:func:`~a.b``` -> ``b``, ````x```` -> ``x``, a paragraph ending in ``::`` -> ``:``.
    """
    if not doc:
        return ""

    def role(m: "re.Match[str]") -> str:
        name = m.group(1).strip()
        return name.rsplit(".", 1)[-1] if m.group(0).startswith((":func:`~", ":class:`~", ":mod:`~",
                                                                  ":meth:`~", ":attr:`~")) else name

    text = _ROLE.sub(role, doc)
    text = _LITERAL.sub(r"\1", text)
    text = re.sub(r"(\S)::(\s*\n)", r"\1:\2", text)
    text = re.sub(r"(\s)::(\s*\n)", r"\2", text)
    return text.strip("\n")


def add_subcommand(subparsers: "argparse._SubParsersAction", name: str, help_text: str,
                   doc: Optional[str] = None) -> argparse.ArgumentParser:
    """A subcommand parser whose description is ``doc`` in plain words, line breaks kept."""
    return subparsers.add_parser(name, help=help_text, description=plain(doc) or help_text,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)


# ----------------------------------------------------------------------------- global

def version_string() -> str:
    """``s2gate X.Y.Z (nir A, torch B if installed, python C)``."""
    import platform
    from importlib import metadata

    def v(dist: str) -> Optional[str]:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    ours = v("s2gate") or "unknown (not installed)"
    parts = [f"{k} {v(k)}" for k in ("nir", "torch") if v(k)]
    parts.append(f"python {platform.python_version()}")
    return f"s2gate {ours} ({', '.join(parts)})"


class _VersionAction(argparse.Action):
    """``--version``: print :func:`version_string` and exit 0 (computed only when asked)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        import sys

        sys.stdout.write(version_string() + "\n")
        sys.stdout.flush()
        parser.exit(0)


def add_global_arguments(parser: argparse.ArgumentParser, top: bool = False) -> None:
    """``--debug`` and ``--version``; on a subcommand they work after its name too.

    On subcommands ``--debug`` defaults to SUPPRESS, so it does not overwrite a ``--debug``
    given before the subcommand.
    """
    g = parser.add_argument_group("general")
    g.add_argument("--debug", action="store_true", default=False if top else argparse.SUPPRESS,
                   help="show the full traceback of an error instead of its one-line message")
    g.add_argument("--version", action=_VersionAction, help="print the versions of s2gate, nir, torch and exit")


# ----------------------------------------------------------------------------- builders

def add_model_argument(parser: argparse.ArgumentParser, help_text: str = "NIR graph (.nir)") -> None:
    """The positional ``MODEL.nir``."""
    parser.add_argument("model", metavar="MODEL.nir", help=help_text)


def add_percentile_argument(parser: "argparse._ActionsContainer", default: Optional[float] = 100.0,
                            short: bool = False) -> None:
    """``--percentile P``: the percentile of |W| per population mapped to the int8 code 127."""
    flags = ("--percentile", "-p") if short else ("--percentile",)
    shown = "100" if default is None else f"{default:g}"
    parser.add_argument(*flags, type=float, default=default, metavar="P",
                        help=f"percentile of |incoming weights| per population mapped to the int8 code 127, "
                             f"in (0, 100] (default {shown})")


def add_conversion_arguments(parser: argparse.ArgumentParser, title: str = "discretisation and conversion "
                             "(py-spinnaker2's s2_nir options)") -> argparse._ArgumentGroup:
    """How a graph is discretised and lowered: ``--dt --integrator --reset --conn-delay
    --scale-weights/--no-scale-weights --percentile --vendor-cast``.

    Every default is None ("not given"): the emulator then uses py-spinnaker2's defaults
    (:func:`conversion_options`), the reference its preset's. Read with :func:`conversion_options`.
    """
    g = parser.add_argument_group(title)
    g.add_argument("--dt", type=float, default=None, metavar="SECONDS",
                   help="tick in seconds (default 1e-4, or the reference preset's)")
    g.add_argument("--integrator", default=None, **INTEGRATORS.kwargs(),
                   help="euler: alpha = 1 - dt/tau; exp: alpha = exp(-dt/tau) (default euler on the emulator, "
                        "the preset's on the reference; 'forward' and 'exponential' are accepted too)")
    g.add_argument("--reset", default=None, **RESETS.kwargs(),
                   help="after a spike: subtract the threshold, reset to NIR's v_reset, or to 0 (default subtract "
                        "on the emulator, the preset's on the reference; the emulator's to_v_reset resets to 0, "
                        "so to_v_reset and to_zero are the same there; 'zero' is accepted for to_zero)")
    g.add_argument("--conn-delay", type=int, default=None, metavar="TICKS",
                   help="extra synaptic delay in ticks of dense and pool projections, written into the connection list "
                        "as py-spinnaker2's converter does (conv projections need 0) (default 0)")
    g.add_argument("--scale-weights", action=argparse.BooleanOptionalAction, default=None,
                   help="derive an int8 weight scale per population; --no-scale-weights for graphs whose weights "
                        "are already integers (default: on, off for graphs written by s2gate quantize)")
    add_percentile_argument(g, default=None)
    add_profile_argument(g)
    g.add_argument("--vendor-cast", action="store_true", default=False,
                   help="with --no-scale-weights, cast non-integer weights to int8 by truncation as py-spinnaker2 "
                        "does (what the NIR paper's lif_spinnaker2.py relied on) instead of rejecting them")
    return g


def conversion_options(args: argparse.Namespace, graph: Any = None):
    """The :class:`~s2emu.network.ConversionOptions` of :func:`add_conversion_arguments`' flags.

    Flags not given are left to :func:`harness.run.options.emulator_options` (the one place that
    decides them): weight scaling off for a quantized ``graph``, the model's own tick, else
    py-spinnaker2's defaults.
    """
    from harness.run.options import emulator_options

    reset = getattr(args, "reset", None)
    return emulator_options(graph, profile=getattr(args, "profile", None),
                            dt=getattr(args, "dt", None), integrator=getattr(args, "integrator", None),
                            reset=EMULATOR_RESET[reset] if reset else None,
                            conn_delay=getattr(args, "conn_delay", None),
                            scale_weights=getattr(args, "scale_weights", None),
                            percentile=getattr(args, "percentile", None),
                            vendor_cast=True if getattr(args, "vendor_cast", False) else None)


def add_profile_argument(parser: "argparse._ActionsContainer") -> None:
    """``--profile NAME``: a vendor profile (``s2emu.profiles``) for the emulator and the reference."""
    from s2emu.profiles import PROFILES

    parser.add_argument("--profile", default=None, choices=list(PROFILES), metavar="NAME",
                        help="a vendor profile: the py-spinnaker2 conversion settings of one public run "
                             f"({', '.join(PROFILES)}; see s2emu/profiles.py) for the emulator and the reference; "
                             "flags given here override it (default: the model's s2gate.profile metadata, else none)")


def add_engine_argument(parser: "argparse._ActionsContainer") -> None:
    """``--engine fast|golden``: the emulator's fast batched engine or its scalar golden model."""
    parser.add_argument("--engine", default="fast", **ENGINES.kwargs(),
                        help="emulator engine: fast (batched) or golden (scalar model, same bits, slow) (default fast)")


def add_input_arguments(parser: argparse.ArgumentParser, batch: int = 1, ticks: int = 100) -> argparse._ArgumentGroup:
    """Input spikes: ``--input FILE`` or seeded random spikes (``--batch --ticks --seed --density``)."""
    g = parser.add_argument_group("input (seeded random spikes unless --input is given)")
    g.add_argument("--input", default=None, metavar="FILE",
                   help="input spikes: .npy, or .npz with the array 'spikes' (as the gate reads; 'inputs' is "
                        "accepted too), of shape (batch, time, *input_shape), or a NIR data file (.h5)")
    g.add_argument("--batch", type=int, default=batch, metavar="N", help=f"samples of random input (default {batch})")
    g.add_argument("--ticks", type=int, default=ticks, metavar="T", help=f"ticks of random input (default {ticks})")
    g.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the random input (default 0)")
    g.add_argument("--density", type=float, default=0.05, metavar="D",
                   help="probability of an input spike per neuron and tick (default 0.05)")
    return g


def add_atoms_arguments(parser: "argparse._ActionsContainer", auto: bool = True) -> None:
    """``--atoms POP=N`` (repeatable) and, with ``auto``, ``--no-auto-atoms``."""
    parser.add_argument("--atoms", action="append", metavar="POP=N", default=None,
                        help="neurons per PE (max_atoms_per_core) of one population, repeatable, e.g. --atoms if3=4; "
                             "overrides the model's s2gate.atoms_per_core metadata")
    if auto:
        parser.add_argument("--no-auto-atoms", action="store_true", default=False,
                            help="do not choose neurons per PE for a layer that overflows one PE (it then fails "
                                 "to fit) (default: the largest number that fits is chosen and reported)")


def add_board_arguments(parser: "argparse._ActionsContainer", default_chips: Optional[int] = 1,
                        default_tick: Optional[float] = 1e-3) -> None:
    """``--max-chips`` / ``--chips N`` and ``--sys-tick S`` (the multi-chip map and the real-time budget,
    :mod:`s2emu.board`, :mod:`s2emu.timing`); ``s2gate gate`` passes None defaults so the
    :class:`~harness.gate.config.GateConfig` fields (1 chip, 1 ms) stay the one default."""
    parser.add_argument("--max-chips", "--chips", dest="max_chips", type=int, default=default_chips, metavar="N",
                        help="chips of a 48-chip board the model may use; with N > 1 its PEs are placed on chips (a "
                             "layer's PEs kept together) and synapse rows that overflow a PE's SRAM go to the chip's "
                             "DRAM (default 1)")
    parser.add_argument("--sys-tick", type=float, default=default_tick, metavar="S",
                        help="seconds per tick of the real-time budget (default 1e-3; py-spinnaker2's low-power runs "
                             "use 2e-3)")


def _gate_default(name: str) -> Any:
    """The default of a :class:`~harness.gate.config.GateConfig` field (budgets: ``BUDGETS``, their one owner)."""
    from harness.gate.config import GateConfig

    f = GateConfig.__dataclass_fields__[name]
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]


def add_data_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The float model and the data: ``--model --dataset --data-root --split --samples --seed
    --batch-size --binarize --quiet`` (``gate`` and ``sweep``)."""
    g = parser.add_argument_group("model and data")
    g.add_argument("--model", metavar="NIR", default=None, help="float P-SNN (default: the bundled psnn.nir)")
    g.add_argument("--dataset", default=_gate_default("dataset"), metavar="NAME",
                   help="stand-in (default) | dvsgesture | PATH.npz with the arrays 'spikes' (N, T, *input_shape) "
                        "of 0/1 and 'labels' (N,) of class indices")
    g.add_argument("--data-root", default=None, metavar="DIR", help="folder of the local DVS Gesture copy")
    g.add_argument("--split", default=_gate_default("split"), **SPLITS.kwargs(), help="data split (default test)")
    g.add_argument("--samples", type=int, default=None, metavar="N", help="use the first N samples (default: all)")
    g.add_argument("--seed", type=int, default=_gate_default("seed"), metavar="S",
                   help="seed of the data and the sample order (default 0)")
    g.add_argument("--batch-size", type=int, default=_gate_default("batch_size"), metavar="B",
                   help="samples per simulator call; results do not depend on it (default: as many as keep a "
                        "batch's spike record near 256 MiB, at most 64)")
    g.add_argument("--binarize", action="store_true", default=False,
                   help="accept event counts (what tonic's ToFrame gives) and turn them into spikes, x > 0 -> 1; "
                        "the report says so (default: data that is not 0/1 is refused)")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    return g


def add_budget_arguments(parser: argparse.ArgumentParser, which: Tuple[str, ...] = ("ptq", "qat", "memory", "strict")) \
        -> argparse._ArgumentGroup:
    """``--ptq-budget --qat-budget --min-memory-reduction --strict`` (defaults: GateConfig's, i.e. ``BUDGETS``)."""
    g = parser.add_argument_group("budgets")
    if "ptq" in which:
        d = _gate_default("ptq_budget")
        g.add_argument("--ptq-budget", type=float, default=d, metavar="PP",
                       help=f"largest accuracy drop float -> PTQ int8 on the emulator, percentage points (default {d:g})")
    if "qat" in which:
        d = _gate_default("qat_budget")
        g.add_argument("--qat-budget", type=float, default=d, metavar="PP",
                       help=f"largest accuracy drop Q-SNN float -> int8 on the emulator, percentage points (default {d:g})")
    if "memory" in which:
        d = _gate_default("min_memory_reduction")
        g.add_argument("--min-memory-reduction", type=float, default=d, metavar="F",
                       help=f"smallest weight-memory reduction float32 -> stored codes, a fraction (default {d:g})")
    if "strict" in which:
        g.add_argument("--strict", action="store_true", default=_gate_default("strict"),
                       help="judge accuracy by the upper bound of the drop's 95 %% interval, not the point estimate "
                            "(default: the point estimate)")
    return g


def add_threshold_ablation_arguments(parser: "argparse._ActionsContainer", prefix: str = "") -> None:
    """``--threshold-ablation`` and ``--threshold-ablation-samples N`` (pytest: ``prefix="s2-"``); defaults:
    GateConfig's. Works on an argparse parser or group and on pytest's option group (same ``add``)."""
    add = getattr(parser, "add_argument", None) or parser.addoption  # type: ignore[attr-defined]
    n = _gate_default("threshold_ablation_samples")
    add(f"--{prefix}threshold-ablation", action="store_true", default=False,
        help="add the threshold-scaling ablation to the report: the PTQ graph on the emulator with thresholds scaled "
             "with the weights, left unscaled and searched on calibration samples (the --calibrate file, else the "
             "dataset's other split)")
    add(f"--{prefix}threshold-ablation-samples", type=int, default=n, metavar="N",
        help=f"test samples of the ablation and calibration samples of its search (default {n})")


def add_report_arguments(parser: argparse.ArgumentParser, default: str = "s2gate-report") -> None:
    """``--report DIR`` and ``--no-report``."""
    parser.add_argument("--report", default=default, metavar="DIR", type=output_dir,
                        help=f"report folder: summary.json, report.md, report.html, plots (default {default}/)")
    parser.add_argument("--no-report", action="store_true", help="print the summary only")
