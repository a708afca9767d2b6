"""The gate's ``realtime`` check (report only unless enforced) on hand-made evaluation dicts."""
from __future__ import annotations

from harness.gate.checks import FAIL, PASS, SKIP, run_check


def _ev(load: float, over: int, enforce: bool = False, errors=None):
    worst = {"index": 7, "population": "if2", "model": "lif_conv2d", "chip": 3, "cycles": load * 250_000,
             "packets_received": 12.5, "synaptic_events": 100.0, "macs": 0.0, "neurons": 256}
    return {"config": {"enforce_realtime": enforce}, "errors": errors or {},
            "realtime": {"fits": True, "reasons": [], "chips": 4, "max_chips": 4, "per_chip": [],
                         "realtime": {"keeps_up": load <= 1.0, "worst_load": load, "worst_pe": worst,
                                      "pes_over_budget": over, "cycles_per_tick_budget": 250_000.0,
                                      "max_load_per_population": {"if2": load},
                                      "constants": {"sys_tick_s": 1e-3, "clock_hz": 250e6}},
                         "energy": {"joules": 0.01, "ticks": 20, "ratio_to_study": 0.0217, "study_joules": 0.46}}}


def test_realtime_passes_when_every_pe_keeps_up():
    c = run_check(_ev(0.5, 0), "realtime")
    assert c.verdict == PASS and c.value == 0.5 and c.measured == "0.500 x 1 ms"
    assert "PE 7 of layer 'if2' on chip 3: 125,000 cycles of 250,000" in c.message


def test_realtime_over_budget_is_report_only_by_default_and_fails_when_enforced():
    c = run_check(_ev(2.0, 3), "realtime")
    assert c.verdict == SKIP and c.message.startswith("realtime: report only: 3 PE(s) cannot finish a tick in time")
    assert c.layer == "if2" and "--atoms if2=N" in c.message
    c = run_check(_ev(2.0, 3, enforce=True), "realtime")
    assert c.verdict == FAIL and c.message.startswith("realtime: 3 PE(s) cannot finish") and c.layer == "if2"
    assert "(report only)" not in c.budget


def test_realtime_cannot_run_when_the_section_failed():
    ev = _ev(0.5, 0, errors={"realtime": "[internal-error] realtime: boom"})
    c = run_check(ev, "realtime")  # report only: the other checks fail for a broken model, this one skips
    assert c.verdict == SKIP and "could not run" in c.message and "boom" in c.message
    ev["config"]["enforce_realtime"] = True
    assert run_check(ev, "realtime").verdict == FAIL
