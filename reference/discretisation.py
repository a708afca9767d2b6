"""The discretisation choices a NIR graph leaves open, and the named presets.

A NIR graph states continuous-time equations (see ``reference/README.md``). Running it on a
tick grid needs choices NIR does not make; :class:`Discretisation` names every one of them,
and :data:`PRESETS` bundles the choices each framework makes when it imports a NIR graph.

Notation for one tick of length ``dt`` (seconds), a leaky neuron with time constant ``tau``,
resistance ``r`` and leak voltage ``v_leak``, and ``x`` the summed input of the tick:

* ``integrator="euler"``: ``a = 1 - dt/tau`` and ``g = dt/tau`` (forward Euler);
  ``integrator="exp"``: ``a = exp(-dt/tau)`` and ``g = 1 - a`` (exact for an input held
  constant over the tick: "exponential Euler").
* ``input_scale`` says what current the tick's input is:
  ``"1"``: ``I = x`` held for the whole tick, so ``v += g*r*x`` (the NIR paper's exact
  simulation: "an input spike is a one-dt step current"; Norse, SpiNNaker2);
  ``"1/dt"``: ``I = x/dt`` held for the tick, i.e. a spike is a unit-area delta pulse, so
  ``v += g*r*x/dt`` (Euler: ``r*x/tau``);
  ``"jump"``: ``v += r*x``, no time factor (Sinabs' ``norm_input=False``, Rockpool's native
  modules: the weight is the voltage jump).
* ``if_input_scale`` is the same choice for the integrators ``I`` and ``IF`` (``dv/dt = r I``,
  no ``tau``): ``"1"``: ``v += dt*r*x``; ``"1/dt"`` (= ``"jump"`` there): ``v += r*x``.
  Every framework read here treats IF input as a jump (Norse ``iaf_feed_forward_step``
  ``v = v + input``; Sinabs ``IAF``; the SpiNNaker2 converter ``convert_IF`` sets
  ``threshold = v_threshold * w_scale / r``), so every preset uses ``"1/dt"``.

A leaky membrane tick is ``v = a*v + g*v_leak + gain*x`` (the new input is added after the
decay and is not itself decayed). The synaptic current of CubaLI/CubaLIF follows the same rule
with ``tau_syn`` and ``w_in``: ``I = a_syn*I + gain_syn*w_in*x``; the membrane is then driven by
``I`` as a current held over the tick (``v = a*v + g*v_leak + g*r*I``, or ``v += r*I`` under
``"jump"``), with the new or the old ``I`` (``cuba_membrane_current``).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional

from s2common.errors import InputDataError

_CHOICES: Dict[str, tuple] = {
    "integrator": ("euler", "exp"),
    "reset": ("to_v_reset", "to_zero", "subtract"),
    "spike_from": ("new", "previous"),
    "input_scale": ("1", "1/dt", "jump"),
    "if_input_scale": ("1", "1/dt"),
    "cuba_membrane_current": ("new", "old"),
    "compare": (">", ">="),
    "projection_latency": (0, 1),
    "initial_v": ("v_leak", "zero"),
    "reset_order": ("before_update", "after_update"),
    "bias": ("input", "i_offset"),
    "if_min_v": ("none", "-threshold"),
    "reset_delay": ("none", "next_tick"),
}


@dataclass(frozen=True)
class Discretisation:
    """Every choice that turns NIR's continuous-time equations into a tick update.

    Attributes:
        dt: the tick in seconds (NIR graphs carry no dt; the NIR paper used 1e-4 s).
        integrator: ``"euler"`` (``a = 1 - dt/tau``, ``g = dt/tau``) or ``"exp"``
            (``a = exp(-dt/tau)``, ``g = 1 - a``).
        reset: ``"to_v_reset"`` (``v = v_reset`` after a spike, NIR's equations),
            ``"to_zero"`` (``v = 0``: importers that drop NIR's ``v_reset``: Norse, snnTorch,
            SpiNNaker2's ``reset_to_v_reset`` with ``v_reset = 0``) or ``"subtract"``
            (``v = v - v_threshold``).
        spike_from: ``"new"``: the spike of tick ``t`` is read from the voltage after this
            tick's update (and the reset is applied in the same tick); ``"previous"``: it is
            read from the voltage the tick starts with (``v[t-1]``, which was not reset), that
            voltage is reset, then this tick's update runs: spikes come one tick later and the
            recorded voltage may sit above threshold for a tick. (snnTorch's own default
            ``reset_delay=True`` is a third variant, spike from the new voltage and reset in
            the next update, that no importer uses: option ``reset_delay``, preset
            ``snntorch-subtract``.)
        input_scale: what current a tick's input ``x`` is for leaky neurons: ``"1"``
            (``I = x`` held one tick), ``"1/dt"`` (``I = x/dt``: a unit-area pulse),
            ``"jump"`` (``v += r*x``, no time factor).
        if_input_scale: the same for ``I`` and ``IF``: ``"1"`` (``v += dt*r*x``) or
            ``"1/dt"`` (``v += r*x``).
        cuba_membrane_current: CubaLI/CubaLIF: the membrane is driven by the synaptic current
            after this tick's update (``"new"``) or before it (``"old"``).
        compare: spike when ``v > v_threshold`` (``">"``, NIR's equations) or ``>=``.
        projection_latency: ``0``: an edge delivers in the same tick; ``1``: every neuron's
            summed input arrives one tick later (SpiNNaker2: spikes emitted in tick t reach
            the target in tick t+1). With ``1`` a back-edge gets no extra tick when the loop
            it closes passes through a neuron input (the latency already breaks the loop).
        initial_v: membrane (and synaptic current) at t = 0: ``"v_leak"`` (rest; Norse) or
            ``"zero"`` (SpiNNaker2, snnTorch, Sinabs, Rockpool). I and IF start at 0 either way;
            synaptic currents start at 0 either way.
        reset_order: with ``spike_from="previous"``: ``"before_update"`` (the voltage that fired
            is reset, then this tick's update runs: ``v = a*(v - th) + ...``) or
            ``"after_update"`` (the update runs on the voltage that fired, then the reset:
            ``v = a*v + ... - z*th``, the threshold subtracted after the decay, as Spyx's
            ``LIF.__call__``: ``V = beta*V + x - spikes*self.threshold``). No effect with
            ``spike_from="new"`` (the reset follows the update anyway).
        bias: where the bias of an Affine/Conv2d feeding an IF/LIF/CubaLIF acts: ``"input"``
            (NIR: it is part of the summed input, so a CubaLIF's bias passes its synaptic filter
            and starts at 0) or ``"i_offset"`` (py-spinnaker2's converter: ``get_accumulated_bias``
            folds it into the neuron's ``i_offset``, CubaLIF: ``bias * node.w_in * I_scale *
            w_scale``: a constant membrane current ``w_in * bias`` at full strength from tick 0,
            bypassing the synapse). For IF and LIF both give the same update (``k * b`` per tick).
        if_min_v: IF only: ``"none"`` (no floor) or ``"-threshold"``: after the reset the voltage is
            clamped to ``v >= -v_threshold`` (Sinabs' importer, sinabs/nir.py, builds
            ``IAFSqueeze(min_v_mem=-v_threshold)``; sinabs/layers/functional/lif.py clamps after the reset).
            No preset sets it: models trained in Sinabs default to ``min_v_mem=None``.
        reset_delay: ``"none"``: a spike's reset is applied in the tick it is emitted; ``"next_tick"``
            (snnTorch's ``reset_delay=True``, its default; snntorch/_neurons/leaky.py ``_base_sub``,
            ``_base_zero``): the voltage that spiked is kept, and the reset is applied in the next tick's
            update (``subtract``: ``v = a*v + k*x - z[t-1]*v_threshold``, the subtracted threshold not
            decayed; ``to_zero``: ``v[t-1]`` is zeroed before the update, which gives the same spikes as
            ``"none"``). Needs ``spike_from="new"``.
    """

    dt: float = 1e-4
    integrator: str = "exp"
    reset: str = "to_v_reset"
    spike_from: str = "new"
    input_scale: str = "1"
    if_input_scale: str = "1/dt"
    cuba_membrane_current: str = "new"
    compare: str = ">"
    projection_latency: int = 0
    initial_v: str = "v_leak"
    reset_order: str = "before_update"
    bias: str = "input"
    if_min_v: str = "none"
    reset_delay: str = "none"

    def __post_init__(self) -> None:
        if not isinstance(self.dt, (int, float)) or not math.isfinite(self.dt) or self.dt <= 0:
            raise InputDataError(f"dt must be a positive number of seconds, got {self.dt!r}", rule="bad-option",
                                 hint="the NIR paper used dt = 1e-4")
        for name, allowed in _CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise InputDataError(f"option {name}={value!r} is not one of {list(allowed)}", rule="bad-option",
                                     hint=f"choose {name} from {list(allowed)}")
        if self.reset_delay == "next_tick" and self.spike_from != "new":
            raise InputDataError("option reset_delay='next_tick' needs spike_from='new'", rule="bad-option",
                                 hint="snnTorch's reset_delay=True reads the spike from the new voltage")

    def replace(self, **changes: Any) -> "Discretisation":
        """A copy with ``changes`` applied (validated)."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


#: Option name -> allowed values (for CLI flags and error messages).
CHOICES = dict(_CHOICES)

PRESETS: Dict[str, Discretisation] = {
    # NIR's equations read as written: an input is a current held for its tick (as in the
    # NIR paper's exact event-driven simulation, paper/01_lif/lif_exact_sim.py), integrated
    # exactly over the tick ("exp"); reset to v_reset and strict ">" as in nir.LIF's docstring;
    # neurons start at rest (v_leak); edges are instantaneous, back-edges carry one tick.
    "nir": Discretisation(),
    # Norse 1.1.0 norse/torch/utils/import_nir.py: LIF -> LIFBoxCell (forward Euler
    # v + dt*tau_mem_inv*(v_leak - v + i), new voltage, reset_value; the importer does not pass
    # NIR's v_reset, so Norse resets to its default 0), IF -> IAFCell (v + input, v_reset 0),
    # CubaLIF -> LIBoxCell synapse
    # (Euler, driven by the new current) then LIFBoxCell; heaviside is torch.gt (">");
    # initial state v = v_leak.
    "norse": Discretisation(integrator="euler", reset="to_zero", spike_from="new", input_scale="1",
                            cuba_membrane_current="new", compare=">", initial_v="v_leak"),
    # snnTorch 1.0.0 snntorch/import_nir.py: LIF -> Leaky(beta = 1 - dt/tau, threshold =
    # v_threshold / (r*dt/tau), reset_mechanism="zero", reset_delay=False): forward Euler with
    # the input scaled by r*dt/tau moved into the threshold, so the recorded voltage is in units
    # of 1/(r*dt/tau) (x25 for the NIR paper's LIF; see reference.units). CubaLIF ->
    # Synaptic(alpha = 1 - dt/tau_syn, beta = 1 - dt/tau_mem), new current. The importer fixes
    # dt = 1e-4. IF -> Leaky(beta=0.9) is an importer bug not reproduced here.
    "snntorch": Discretisation(integrator="euler", reset="to_zero", spike_from="new", input_scale="1",
                               cuba_membrane_current="new", compare=">", initial_v="zero"),
    # Rockpool (synsense/rockpool rockpool/nn/modules/torch/nir.py imports CubaLIF/LI only, as
    # LIFTorch/ExpSynTorch): v = exp(-dt/tau)*v + input (the weight is the voltage jump),
    # reset by subtraction, spikes where v >= threshold (rockpool/nn/modules/torch/lif_torch.py
    # StepPWL: (x >= threshold) * floor(x / threshold); several spikes per tick are not
    # modelled). Its CubaLIF import sets dt = tau_mem / (1 + r), which no preset copies. The NIR paper's lif_rockpool.csv was made with a hand-built
    # LIFNeuronTorch whose weight was set to 0.04 (= dt/tau), not through the importer.
    # snnTorch 1.0.0's own default Leaky (reset_mechanism="subtract", reset_delay=True;
    # snntorch/_neurons/leaky.py _base_sub): mem = beta*mem + x - reset*threshold with reset the spike
    # of the previous tick. Its NIR export writes no reset (v_reset = 0), so harness.intake.from_snntorch
    # picks this preset from the module; the snntorch preset above is what snnTorch's importer builds.
    "snntorch-subtract": Discretisation(integrator="euler", reset="subtract", spike_from="new", input_scale="1",
                                        cuba_membrane_current="new", compare=">", initial_v="zero",
                                        reset_delay="next_tick"),
    "rockpool": Discretisation(integrator="exp", reset="subtract", spike_from="new", input_scale="jump",
                               cuba_membrane_current="new", compare=">=", initial_v="zero"),
    # Sinabs (synsense/sinabs sinabs/nir.py): LIF -> LIFSqueeze(tau_mem, norm_input=False,
    # default MembraneSubtract reset), v = alpha*v + input with alpha = exp(-dt/tau); spikes
    # from the new voltage with ">=" (SingleSpike: v - threshold >= 0; MultiSpike: trunc(v/thr)).
    # Not modelled: MultiSpike's several spikes per tick and IAF's min_v_mem = -threshold clamp.
    "sinabs": Discretisation(integrator="exp", reset="subtract", spike_from="new", input_scale="jump",
                             cuba_membrane_current="new", compare=">=", initial_v="zero"),
    # SpiNNaker2 (py-spinnaker2 s2_nir.py, public copy in SpiNNakerManchester/sPiNNIRker):
    # convert_LIF with IntegratorMethod.FORWARD: alpha_decay = 1 - dt/tau, r_factor = dt/tau*r,
    # i_offset = dt/tau*v_leak*scale; chip tick v = alpha*v + I + i_offset (input added after
    # the decay), strict ">", reset_by_subtraction (the converter's default), v recorded after
    # reset, v starts at 0; one tick of latency per projection (see
    # ../shared/design/s2-arithmetic.md). In NIR units this is the Euler update below.
    # get_accumulated_bias + convert_CubaLIF: "i_offset": ... + bias * node.w_in * I_scale * w_scale,
    # so an Affine's bias drives a CubaLIF's membrane from tick 0 without the synaptic filter.
    "spinnaker2": Discretisation(integrator="euler", reset="subtract", spike_from="new", input_scale="1",
                                 cuba_membrane_current="new", compare=">", projection_latency=1,
                                 initial_v="zero", bias="i_offset"),
    # Spyx (kmheckel/spyx) spyx/nn.py LIF.__call__: spikes = self.act(V - self.threshold) with
    # Axon's forward jnp.heaviside(x, 0) (strict ">"), read from the voltage the tick starts with;
    # V = beta*V + x - spikes*self.threshold (subtraction after the decay); initial_state zeros.
    # spyx/nir.py _nir_node_to_spyx_params: LIF beta = 1 - dt/tau (forward Euler), weights into
    # a LIF scaled by dt/tau ("1", r taken as 1), into an IF by dt/1 (if_input_scale "1"); IF.__call__
    # V = V + x - spikes*threshold. Not modelled: Spyx drops v_leak and r; its CuBaLIF subtracts
    # the threshold twice (V = V - spikes*th, then V = beta*V + I - spikes*th) and drives the
    # membrane with I at gain 1.
    "spyx": Discretisation(integrator="euler", reset="subtract", spike_from="previous", input_scale="1",
                           if_input_scale="1", cuba_membrane_current="new", compare=">", initial_v="zero",
                           reset_order="after_update"),
    # Lava (lava-nc/lava) src/lava/proc/lif/models.py AbstractPyLifModelFloat (the CPU float LIF):
    # subthr_dynamics u = u*(1 - du) + a_in; v = v*(1 - dv) + u + bias_mant; PyLifModelFloat
    # spiking_activation v > vth; reset_voltage v[spike] = 0; u, v start at 0. The NIR paper's
    # importer (neuromorphs/NIR paper/01_lif/_lava_nir.py, _nir_node_to_lava) maps a LIF to
    # du = 1 (no current: u = a_in), dv = dt/tau and input weights times dt/tau (Euler, "1").
    # Lava's Dense (src/lava/proc/dense/models.py run_spk) sends "a buffered value from dendritic
    # accumulation at timestep t-1": one tick of latency per projection, the option no other
    # framework preset has (the paper's importer chains two Dense per LIF: two ticks).
    "lava": Discretisation(integrator="euler", reset="to_zero", spike_from="new", input_scale="1",
                           cuba_membrane_current="new", compare=">", projection_latency=1, initial_v="zero"),
}


def resolve(preset: "str | Discretisation" = "nir", options: Optional[Mapping[str, Any]] = None,
            dt: Optional[float] = None) -> Discretisation:
    """The :class:`Discretisation` for ``preset`` with ``options`` (and ``dt``) overriding it.

    Raises:
        InputDataError: unknown preset or option, or a value not allowed.
    """
    if isinstance(preset, Discretisation):
        base = preset
    else:
        if preset not in PRESETS:
            raise InputDataError(f"unknown preset {preset!r}", rule="unknown-preset",
                                 hint=f"choose one of {', '.join(PRESETS)}")
        base = PRESETS[preset]
    changes: Dict[str, Any] = {}
    for key, value in dict(options or {}).items():
        if value is None:
            continue
        if key not in _CHOICES and key != "dt":
            raise InputDataError(f"unknown discretisation option {key!r}", rule="bad-option",
                                 hint=f"options are: dt, {', '.join(_CHOICES)}")
        if key == "projection_latency":
            value = int(value)
        changes[key] = value
    if dt is not None:
        changes["dt"] = dt
    if "dt" in changes:
        try:
            changes["dt"] = float(changes["dt"])
        except (TypeError, ValueError):
            raise InputDataError(f"dt must be a number, got {changes['dt']!r}", rule="bad-option") from None
    return base.replace(**changes) if changes else base
