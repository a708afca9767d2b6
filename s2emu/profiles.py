"""Vendor profiles: named sets of py-spinnaker2 conversion options, each read from a public file.

A profile fixes what ``s2_nir.ConversionConfig`` (GitHub ``SpiNNakerManchester/sPiNNIRker``, commit 47c758b,
``spinnirker/__init__.py``) was set to in one run, plus the ``max_atoms_per_core`` overrides that run
used. ``PROFILES[name].conversion_options()`` gives the :class:`~s2emu.network.ConversionOptions`;
``reference_options()`` the matching options of the reference's ``spinnaker2`` preset (reset and
integrator follow the conversion), so the gate compares like with like. A model may name its profile in
``graph.metadata["s2gate.profile"]`` (:func:`profile_of`).

| profile | dt | integrator | reset | conn_delay | scale_weights | atoms | read from |
|---|---|---|---|---|---|---|---|
| ``converter-defaults`` | 1.0 | exp | subtract | 1 | False | - | ``ConversionConfig``'s field defaults |
| ``nir-paper-cnn`` | 1e-4 | euler | to_v_reset (ZERO) | 0 | True | 3: 256, 6: 128, 10: 16 | ``neuromorphs/NIR`` ``paper/02_cnn/s2_apply.ipynb`` |
| ``nir-paper-braille`` | 1e-4 | euler | subtract | 0 | True | lif1.lif: 10 | ``neuromorphs/NIR`` ``paper/03_rnn/s2_apply.py`` |
| ``nir-paper-lif`` | 1e-4 | euler | to_v_reset (ZERO) | 0 | False (+ vendor cast) | - | ``neuromorphs/NIR`` ``paper/01_lif/lif_spinnaker2.py`` |

(The ``neuromorphs/NIR`` files as of its HEAD, commit 7232ada; the CNN notebook and the LIF script use
``ResetMethod.ZERO``, the Braille script ``SUBTRACT`` for its ``noDelay_noBias_subtract`` model.)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

from s2common.errors import InputDataError

from .network import ConversionOptions


@dataclass(frozen=True)
class Profile:
    """One named conversion setting.

    Attributes:
        name: the profile's name.
        source: the public file (repository, path) the values were read from.
        quote: the lines of that file that set them.
        options: ``ConversionOptions`` fields that differ from its defaults.
        atoms_per_core: ``max_atoms_per_core`` overrides per population name.
    """

    name: str
    source: str
    quote: str
    options: Tuple[Tuple[str, Any], ...]
    atoms_per_core: Tuple[Tuple[str, int], ...] = field(default_factory=tuple)

    def conversion_options(self, base: Optional[ConversionOptions] = None) -> ConversionOptions:
        """The profile's :class:`ConversionOptions` (on top of ``base``, default: ConversionOptions())."""
        return dataclasses.replace(base or ConversionOptions(), **dict(self.options))

    def reference_options(self) -> Dict[str, Any]:
        """Options for the reference's ``spinnaker2`` preset that match: dt, integrator, reset."""
        o = self.conversion_options()
        return {"dt": o.dt, "integrator": o.integrator, "reset": "to_zero" if o.reset == "to_v_reset" else "subtract"}

    def atoms(self) -> Dict[str, int]:
        return dict(self.atoms_per_core)


PROFILES: Dict[str, Profile] = {p.name: p for p in (
    Profile("converter-defaults",
            "GitHub SpiNNakerManchester/sPiNNIRker, commit 47c758b, spinnirker/__init__.py, class ConversionConfig",
            "dt: float = 1.0; conn_delay: int = 1; scale_weights: bool = False; weight_scale_percentile: float = 100; "
            "integrator: IntegratorMethod = IntegratorMethod.EXPONENTIAL; reset: ResetMethod = ResetMethod.SUBTRACT",
            (("dt", 1.0), ("conn_delay", 1), ("scale_weights", False), ("percentile", 100.0), ("integrator", "exp"),
             ("reset", "subtract"))),
    Profile("nir-paper-cnn", "GitHub neuromorphs/NIR, paper/02_cnn/s2_apply.ipynb",
            "conversion_cfg.dt = 0.0001; conversion_cfg.conn_delay = 0; conversion_cfg.scale_weights = True; "
            "conversion_cfg.reset = s2_nir.ResetMethod.ZERO; conversion_cfg.integrator = "
            "s2_nir.IntegratorMethod.FORWARD; max_atoms_per_core = {\"3\": 256, \"6\": 128, \"10\": 16}",
            (("dt", 1e-4), ("conn_delay", 0), ("scale_weights", True), ("integrator", "euler"), ("reset", "to_v_reset")),
            (("3", 256), ("6", 128), ("10", 16))),
    Profile("nir-paper-braille", "GitHub neuromorphs/NIR, paper/03_rnn/s2_apply.py",
            "cfg = s2_nir.ConversionConfig(output_record=[\"spikes\"], dt=0.0001, conn_delay=0, scale_weights=True, "
            "reset=reset_method, integrator=s2_nir.IntegratorMethod.FORWARD) with reset_method = "
            "ResetMethod.SUBTRACT for model_name = \"noDelay_noBias_subtract\"; pop.set_max_atoms_per_core(10) "
            "for \"lif1.lif\"",
            (("dt", 1e-4), ("conn_delay", 0), ("scale_weights", True), ("integrator", "euler"), ("reset", "subtract")),
            (("lif1.lif", 10),)),
    Profile("nir-paper-lif", "GitHub neuromorphs/NIR, paper/01_lif/lif_spinnaker2.py",
            "conversion_cfg.dt = 0.0001; conversion_cfg.conn_delay = 0; conversion_cfg.scale_weights = False; "
            "conversion_cfg.reset = s2_nir.ResetMethod.ZERO; conversion_cfg.integrator = "
            "s2_nir.IntegratorMethod.FORWARD (weights pre-multiplied by scale = 102.02, so py-spinnaker2 casts floats)",
            (("dt", 1e-4), ("conn_delay", 0), ("scale_weights", False), ("integrator", "euler"), ("reset", "to_v_reset"),
             ("vendor_cast", True))),
)}


def get_profile(name: str) -> Profile:
    """The profile called ``name``; ``InputDataError`` (rule ``unknown-profile``) names the known ones."""
    if name not in PROFILES:
        raise InputDataError(f"unknown vendor profile {name!r}", rule="unknown-profile",
                             hint=f"choose one of {', '.join(PROFILES)}")
    return PROFILES[name]


def profile_of(graph: Any) -> Optional[Profile]:
    """The profile a model names in ``graph.metadata["s2gate.profile"]``, or None."""
    meta: Mapping[str, Any] = getattr(graph, "metadata", None) or {}
    name = meta.get("s2gate.profile")
    if name is None:
        return None
    if isinstance(name, bytes):
        name = name.decode()
    return get_profile(str(name))


def resolve(name: Optional[str] = None, graph: Any = None) -> Optional[Profile]:
    """The profile named on the command line (``--profile`` / ``--s2-profile``), else the model's metadata one."""
    if name:
        return get_profile(name)
    return profile_of(graph) if graph is not None else None
