"""Stateful NIR nodes (I, IF, LI, LIF, CubaLI, CubaLIF, Delay): one tick, batched.

State arrays have shape ``(batch, *shape)``. Coefficients are computed once in float64 from
the node's parameters and the :class:`~reference.discretisation.Discretisation`, then cast to
the run's dtype, so a float32 run does float32 arithmetic with correctly rounded coefficients.

One tick of a leaky membrane (LI, LIF; CubaLI/CubaLIF with ``tau_mem``), ``x`` the summed
input of the tick::

    v = a*v + g*v_leak + k*x          a, g from the integrator; k from input_scale

then for spiking nodes (spike_from="new")::

    z = v > v_threshold  (or >=)
    v = v_reset where z  (reset="to_v_reset")  |  0 ("to_zero")  |  v - v_threshold ("subtract")

With spike_from="previous" the spike of this tick is read from the voltage the tick starts
with (before the update), that voltage is reset, and then the update above runs.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

from s2common.graph import node_type

from .discretisation import Discretisation

Shape = Tuple[int, ...]


def _p(node: object, name: str, shape: Shape) -> np.ndarray:
    """Parameter ``name`` as a float64 array of ``shape``."""
    return np.broadcast_to(np.asarray(getattr(node, name), dtype=np.float64), shape).astype(np.float64)


def decay_and_gain(tau: np.ndarray, disc: Discretisation) -> Tuple[np.ndarray, np.ndarray]:
    """``(a, g)`` for one tick: the factor on the old value and on a constant drive.

    Euler: ``a = 1 - dt/tau``, ``g = dt/tau``; exp: ``a = exp(-dt/tau)``, ``g = 1 - a``
    (``-expm1(-dt/tau)``, accurate for small ``dt/tau``).
    """
    ratio = disc.dt / tau
    if disc.integrator == "euler":
        return 1.0 - ratio, ratio
    return np.exp(-ratio), -np.expm1(-ratio)


def input_gain(g: np.ndarray, weight: np.ndarray, disc: Discretisation) -> np.ndarray:
    """Factor on a tick's input ``x`` for a leaky state with drive gain ``g`` and weight
    ``weight`` (``r`` or ``w_in``): ``g*weight`` ("1"), ``g*weight/dt`` ("1/dt"), ``weight`` ("jump")."""
    if disc.input_scale == "1":
        return g * weight
    if disc.input_scale == "1/dt":
        return g * weight / disc.dt
    return weight.copy()


class Neuron:
    """One neuron population. ``step(x)`` advances one tick and returns the node's output
    (spikes as 0/1 in the run dtype for spiking nodes, the voltage for I/LI/CubaLI)."""

    spiking = False
    has_current = False
    #: bias folded into the membrane (``bias="i_offset"``), or None: set by :func:`fold_bias`
    folded: Optional[np.ndarray] = None

    def __init__(self, name: str, node: object, shape: Shape, disc: Discretisation, dtype: np.dtype) -> None:
        self.name = name
        self.node = node
        self.shape = shape
        self.disc = disc
        self.dtype = np.dtype(dtype)
        self.typ = node_type(node)
        self._setup()

    # subclasses fill these
    def _setup(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _c(self, arr: np.ndarray) -> np.ndarray:
        return np.asarray(arr, dtype=np.float64).astype(self.dtype)

    def reset_state(self, batch: int, ticks: int = 0) -> None:
        self.v = np.broadcast_to(self.v0, (batch, *self.shape)).copy()
        if self.has_current:
            self.i = np.zeros((batch, *self.shape), dtype=self.dtype)

    def rest_output(self) -> np.ndarray:
        """What the node emits before t = 0 (one sample): its initial voltage, or no spikes."""
        if self.spiking:
            return np.zeros(self.shape, dtype=self.dtype)
        return np.broadcast_to(self.v0, self.shape).astype(self.dtype)

    def step(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class _Spiking(Neuron):
    spiking = True

    def _setup_threshold(self) -> None:
        self.th = self._c(_p(self.node, "v_threshold", self.shape))
        reset = getattr(self.node, "v_reset", None)
        self.v_reset = self._c(_p(self.node, "v_reset", self.shape) if reset is not None else np.zeros(self.shape))

    def _fire(self, v: np.ndarray) -> np.ndarray:
        return v > self.th if self.disc.compare == ">" else v >= self.th

    def _reset(self, v: np.ndarray, z: np.ndarray) -> np.ndarray:
        if self.disc.reset == "subtract":
            return np.where(z, v - self.th, v)
        if self.disc.reset == "to_zero":
            return np.where(z, self.dtype.type(0), v)
        return np.where(z, self.v_reset, v)

    def _reset_in_place(self, v: np.ndarray, z: np.ndarray) -> np.ndarray:
        """``_reset`` written into ``v`` (an array this step made): the same values, no copies."""
        if self.disc.reset == "subtract":
            np.subtract(v, self.th, out=v, where=z)
        elif self.disc.reset == "to_zero":
            np.copyto(v, self.dtype.type(0), where=z)
        else:
            np.copyto(v, np.broadcast_to(self.v_reset, v.shape), where=z)
        return v

    def _integrate(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def reset_state(self, batch: int, ticks: int = 0) -> None:
        super().reset_state(batch, ticks)
        self.z = np.zeros((batch, *self.shape), dtype=bool)

    def run_ticks(self, x: np.ndarray, first: "np.ndarray | None" = None,
                  spikes: "np.ndarray | None" = None) -> "np.ndarray | None":
        """Several ticks at once: ``x`` (ticks, batch, *shape) the summed inputs (with ``first`` (batch, *shape):
        tick t gets ``x[t - 1]``, tick 0 ``first``); returns the spikes (ticks, batch, *shape) as :meth:`step`
        would tick by tick, but as uint8 0/1, or None (then the caller steps). ``spikes`` (batch, ticks, *shape) bool, if given,
        receives them too (a recording's slice). One compiled pass
        (:func:`reference.kernels.spiking_ticks`) for IF and LIF with the spike from the new voltage and the
        reset in its tick, the same operations in the same order as :meth:`step`; other variants return None."""
        if self.typ not in ("IF", "LIF") or self.disc.spike_from != "new" or self.disc.reset_delay == "next_tick":
            return None
        from .kernels import spiking_ticks

        p = getattr(self, "_fused", None)
        if p is None:
            n = int(np.prod(self.shape, dtype=np.int64))
            one = np.ones(n, dtype=self.dtype)

            def flat(name: str) -> np.ndarray:
                val = getattr(self, name, None)
                return one if val is None else np.ascontiguousarray(np.broadcast_to(val, self.shape).reshape(-1))

            leaky = self.typ == "LIF"
            p = {"k": flat("k"), "a": flat("a") if leaky else one, "gl": flat("gl") if leaky else one,
                 "folded": flat("folded"), "th": flat("th"), "v_reset": flat("v_reset"), "leaky": leaky,
                 "k_is_one": bool(getattr(self, "k_is_one", False)) and not leaky, "has_folded": self.folded is not None,
                 "ge": self.disc.compare != ">", "reset": ("subtract", "to_zero", "to_v_reset").index(self.disc.reset),
                 "clamp": self.typ == "IF" and self.disc.if_min_v == "-threshold"}
            self._fused = p
        ticks, batch = x.shape[0], x.shape[1]
        v = np.ascontiguousarray(self.v.reshape(batch, -1), dtype=self.dtype)
        # spikes 0/1 as uint8: a quarter to an eighth of the memory traffic to the next node, which converts
        # them to the run dtype (exactly) before any arithmetic (reference.simulate._run_layers)
        out = np.empty((ticks, batch, v.shape[1]), dtype=np.uint8)
        # uint8 spikes from a spiking node are read as they are (v + x in the kernel is the float sum)
        xd = x if x.dtype == np.uint8 else np.asarray(x, dtype=self.dtype)
        spiking_ticks(xd.reshape(ticks, batch, -1), v, p, out,
                      None if first is None else np.broadcast_to(first, (batch, *self.shape)).reshape(batch, -1),
                      None if spikes is None else _flat_view(spikes, (batch, ticks, v.shape[1])))
        self.v = v.reshape((batch, *self.shape))
        self.z = out[-1].reshape((batch, *self.shape)) != 0
        return out.reshape((ticks, batch, *self.shape))

    def step(self, x: np.ndarray) -> np.ndarray:
        if self.disc.spike_from == "previous" and self.disc.reset_order == "after_update":
            z = self._fire(self.v)
            self.v = self._reset(self._integrate(x), z)
        elif self.disc.reset_delay == "next_tick":
            # snnTorch's reset_delay=True: the spike is read from the new voltage, which is not reset; the
            # reset of tick t-1's spikes is applied in tick t's update (subtract: v = a*v + k*x - z[t-1]*th,
            # the threshold not decayed; to_zero / to_v_reset: v[t-1] is reset, then the update runs)
            if self.disc.reset == "subtract":
                v = self._integrate(x) - self.z * self.th
            else:
                self.v = self._reset(self.v, self.z)
                v = self._integrate(x)
            z = self._fire(v)
            self.v = v
        elif self.disc.spike_from == "previous":
            z = self._fire(self.v)
            self.v = self._reset(self.v, z)
            self.v = self._integrate(x)
        else:
            v = self._integrate(x)  # a new array: reset in place
            z = self._fire(v)
            self.v = self._reset_in_place(v, z)
        self.z = z
        return z.astype(self.dtype)


def _flat_view(arr: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    """``arr`` reshaped without a copy (raises if that needs one)."""
    view = arr.view()
    view.shape = shape
    return view


class _Integrating:
    """Shared membrane of I/IF: ``dv/dt = r*I``. Tick: ``v += k*x`` with ``k = dt*r``
    (if_input_scale "1") or ``r`` ("1/dt"); v starts at 0."""

    def _setup_integrating(self) -> None:
        r = _p(self.node, "r", self.shape)
        self.k = self._c(r * self.disc.dt if self.disc.if_input_scale == "1" else r)
        self.k_is_one = bool(np.all(self.k == 1))  # 1 * x == x exactly: skip the product
        self.v0 = np.zeros(self.shape, dtype=self.dtype)

    def _integrate(self, x: np.ndarray) -> np.ndarray:
        v = self.v + (x if self.k_is_one else self.k * x)
        if self.folded is not None:
            v += self.folded
        return v


class Integrator(_Integrating, Neuron):
    """nir.I: ``dv/dt = r*I``. Output: v."""

    def _setup(self) -> None:
        self._setup_integrating()

    def step(self, x: np.ndarray) -> np.ndarray:
        self.v = self._integrate(x)
        return self.v


class IF(_Integrating, _Spiking):
    """nir.IF: ``dv/dt = r*I``, spike and reset. Tick: ``v += k*x`` as for I."""

    def _setup(self) -> None:
        self._setup_integrating()
        self._setup_threshold()

    def step(self, x: np.ndarray) -> np.ndarray:
        z = super().step(x)
        if self.disc.if_min_v == "-threshold":  # Sinabs' imported IAF: min_v_mem = -threshold, after the reset
            self.v = np.maximum(self.v, -self.th)
        return z


def _leaky_coefficients(node: object, tau_name: str, shape: Shape, disc: Discretisation) -> Dict[str, np.ndarray]:
    tau = _p(node, tau_name, shape)
    r = _p(node, "r", shape)
    v_leak = _p(node, "v_leak", shape)
    a, g = decay_and_gain(tau, disc)
    return {"a": a, "gl": g * v_leak, "g": g, "r": r, "v_leak": v_leak}


class _Leaky:
    """Shared membrane of LI/LIF: ``tau dv/dt = v_leak - v + r*I``. Tick: ``v = a*v + g*v_leak + k*x``."""

    def _setup_leaky(self) -> None:
        c = _leaky_coefficients(self.node, "tau", self.shape, self.disc)
        self.a, self.gl = self._c(c["a"]), self._c(c["gl"])
        self.k = self._c(input_gain(c["g"], c["r"], self.disc))
        self.v0 = self._c(c["v_leak"] if self.disc.initial_v == "v_leak" else np.zeros(self.shape))

    def _integrate(self, x: np.ndarray) -> np.ndarray:
        v = self.a * self.v + self.gl + self.k * x
        return v if self.folded is None else v + self.folded


class LI(_Leaky, Neuron):
    """nir.LI. Output: v."""

    def _setup(self) -> None:
        self._setup_leaky()

    def step(self, x: np.ndarray) -> np.ndarray:
        self.v = self._integrate(x)
        return self.v


class LIF(_Leaky, _Spiking):
    """nir.LIF: LI plus threshold and reset."""

    def _setup(self) -> None:
        self._setup_leaky()
        self._setup_threshold()


class _Cuba:
    """Shared synapse of CubaLI/CubaLIF: ``tau_syn dI/dt = -I + w_in*S``,
    ``tau_mem dv/dt = v_leak - v + r*I``.

    Tick: ``I' = a_s*I + k_s*x`` (``k_s`` from input_scale with ``w_in``); the membrane is
    driven by ``I'`` (cuba_membrane_current="new") or ``I`` ("old") as a current held over the
    tick: ``v = a_m*v + g_m*v_leak + k_m*I_drive`` with ``k_m = g_m*r`` (``r`` under "jump").
    """

    has_current = True

    def _setup_cuba(self) -> None:
        shape, disc = self.shape, self.disc
        a_s, g_s = decay_and_gain(_p(self.node, "tau_syn", shape), disc)
        w_in = _p(self.node, "w_in", shape)
        c = _leaky_coefficients(self.node, "tau_mem", shape, disc)
        self.a_s = self._c(a_s)
        self.k_s = self._c(input_gain(g_s, w_in, disc))
        self.a, self.gl = self._c(c["a"]), self._c(c["gl"])
        self.k_m = self._c(c["r"] if disc.input_scale == "jump" else c["g"] * c["r"])
        self.v0 = self._c(c["v_leak"] if disc.initial_v == "v_leak" else np.zeros(shape))

    def _cuba_integrate(self, x: np.ndarray) -> np.ndarray:
        i_new = self.a_s * self.i + self.k_s * x
        drive = i_new if self.disc.cuba_membrane_current == "new" else self.i
        self.i = i_new
        v = self.a * self.v + self.gl + self.k_m * drive
        return v if self.folded is None else v + self.folded


class CubaLI(_Cuba, Neuron):
    """nir.CubaLI. Output: v."""

    def _setup(self) -> None:
        self._setup_cuba()

    def step(self, x: np.ndarray) -> np.ndarray:
        self.v = self._cuba_integrate(x)
        return self.v


class CubaLIF(_Cuba, _Spiking):
    """nir.CubaLIF: CubaLI plus threshold and reset (the current is not reset)."""

    def _setup(self) -> None:
        self._setup_cuba()
        self._setup_threshold()

    def _integrate(self, x: np.ndarray) -> np.ndarray:
        return self._cuba_integrate(x)


def fold_bias(runner: object, bias: np.ndarray) -> None:
    """``bias="i_offset"``: the neuron gets the accumulated bias of its direct Affine/Conv2d predecessors
    (``bias``, float64 of its shape) as a constant drive, and those nodes' biases are removed from its input.

    Per tick the membrane gains ``k * b`` (IF, LIF: the same as the bias through the input) or
    ``k_m * w_in * b`` (CubaLIF: the converter's ``bias * node.w_in * I_scale * w_scale`` in chip
    units is ``g * r * w_in * b`` in NIR units: the synaptic current's steady state ``w_in * b``
    from tick 0). Rounded once to the run dtype.
    """
    node = runner.node  # type: ignore[attr-defined]
    b = np.asarray(bias, dtype=np.float64)
    if runner.typ == "CubaLIF":  # type: ignore[attr-defined]
        shape = runner.shape  # type: ignore[attr-defined]
        c = _leaky_coefficients(node, "tau_mem", shape, runner.disc)  # type: ignore[attr-defined]
        k_m = c["r"] if runner.disc.input_scale == "jump" else c["g"] * c["r"]  # type: ignore[attr-defined]
        term = k_m * _p(node, "w_in", shape) * b
    elif runner.typ == "IF":  # type: ignore[attr-defined]
        r = _p(node, "r", runner.shape)  # type: ignore[attr-defined]
        term = (r * runner.disc.dt if runner.disc.if_input_scale == "1" else r) * b  # type: ignore[attr-defined]
    else:
        c = _leaky_coefficients(node, "tau", runner.shape, runner.disc)  # type: ignore[attr-defined]
        term = input_gain(c["g"], c["r"], runner.disc) * b  # type: ignore[attr-defined]
    runner.folded = runner._c(term)  # type: ignore[attr-defined]


NEURON_CLASSES = {"I": Integrator, "IF": IF, "LI": LI, "LIF": LIF, "CubaLI": CubaLI, "CubaLIF": CubaLIF}


class Delay:
    """nir.Delay: ``y(t) = x(t - delay)``. The delay in seconds becomes ``round(delay/dt)``
    ticks per element (round half to even). Before t = 0 the input was 0. A delay at least
    as long as the run emits zeros throughout; the ring buffer holds at most ``ticks + 1``
    slots, so a valid but enormous delay (1e12 s) costs nothing."""

    def __init__(self, name: str, node: object, shape: Shape, disc: Discretisation, dtype: np.dtype) -> None:
        self.name = name
        self.shape = shape
        self.dtype = np.dtype(dtype)
        d = np.broadcast_to(np.asarray(node.delay, dtype=np.float64), shape)
        with np.errstate(over="ignore"):
            self.ticks_f = np.rint(d / disc.dt)  # float: may exceed int64 for absurd delays

    def reset_state(self, batch: int, ticks: int = 0) -> None:
        run = max(int(ticks), 1)
        self.never = self.ticks_f >= run  # delayed past the end of the run
        self.ticks = np.minimum(self.ticks_f, run).astype(np.int64)
        self.length = int(self.ticks.max()) + 1 if self.ticks.size else 1
        self.buf = np.zeros((self.length, batch, *self.shape), dtype=self.dtype)
        self.t = 0

    def rest_output(self) -> np.ndarray:
        return np.zeros(self.shape, dtype=self.dtype)

    def step(self, x: np.ndarray) -> np.ndarray:
        self.buf[self.t % self.length] = x
        idx = (self.t - self.ticks) % self.length  # (*shape,)
        self.t += 1
        if self.length == 1:
            return self.buf[0].copy()
        out = np.take_along_axis(self.buf, np.broadcast_to(idx, (1, *self.buf.shape[1:])), axis=0)[0]
        if self.never.any():
            out = np.where(self.never, self.dtype.type(0), out)
        return out


def make_stateful(name: str, node: object, shape: Shape, disc: Discretisation, dtype: np.dtype) -> Optional[object]:
    """The stateful runner for ``node``, or None if it is stateless."""
    typ = node_type(node)
    if typ in NEURON_CLASSES:
        return NEURON_CLASSES[typ](name, node, shape, disc, dtype)
    if typ == "Delay":
        return Delay(name, node, shape, disc, dtype)
    return None
