"""Every asv benchmark module imports, and its benchmarks follow asv's naming conventions.

asv only runs methods (or functions) named ``time_*``, ``timeraw_*``, ``mem_*``, ``peakmem_*`` or
``track_*``; a misspelt prefix silently drops a benchmark from the history, so it is checked here.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PREFIXES = ("time_", "timeraw_", "mem_", "peakmem_", "track_")
HOOKS = {"setup", "teardown", "setup_cache"}
# benchmarks/ modules that are scripts, not asv benchmark modules
SCRIPTS = {"common", "throughput", "reference_vs_norse", "reference_vs_commit", "gate_regression"}


def _modules():
    import benchmarks

    return sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name not in SCRIPTS)


def test_asv_conf_points_at_the_benchmarks():
    import json
    import re

    text = (ROOT / "asv.conf.json").read_text()
    conf = json.loads(re.sub(r"^\s*//.*$", "", text, flags=re.M))  # asv allows // comment lines
    assert conf["benchmark_dir"] == "benchmarks"
    assert conf["repo"] == "."
    assert (ROOT / conf["benchmark_dir"] / "__init__.py").exists()


def test_there_are_benchmarks_of_every_kind():
    kinds = set()
    for name in _modules():
        mod = importlib.import_module(f"benchmarks.{name}")
        for _, cls in inspect.getmembers(mod, inspect.isclass):
            if cls.__module__ == mod.__name__:
                kinds |= {m.split("_")[0] for m in dir(cls) if m.startswith(PREFIXES)}
    assert {"time", "peakmem", "track"} <= kinds


@pytest.mark.parametrize("name", _modules())
def test_module_follows_asv_conventions(name):
    mod = importlib.import_module(f"benchmarks.{name}")
    classes = [c for _, c in inspect.getmembers(mod, inspect.isclass) if c.__module__ == mod.__name__]
    assert classes, f"benchmarks/{name}.py defines no benchmark class"
    for cls in classes:
        methods = {n for n, v in vars(cls).items() if callable(v) and not n.startswith("_")}
        benches = {n for n in methods if n.startswith(PREFIXES)}
        assert benches, f"{cls.__name__} has no time_/peakmem_/track_ method"
        # every other public method is an asv hook: anything else is a misnamed benchmark
        assert methods - benches <= HOOKS, f"{cls.__name__}: not asv names: {sorted(methods - benches - HOOKS)}"
        params = getattr(cls, "params", None)
        names = getattr(cls, "param_names", None)
        if params is not None:
            assert isinstance(params, (list, tuple)) and names is not None
            assert len(names) == len(params), f"{cls.__name__}: {len(names)} param_names for {len(params)} axes"
            for axis in params:
                assert len(axis) >= 1
        n_params = len(params) if params is not None else 0
        has_cache = "setup_cache" in vars(cls)
        for b in sorted(benches):
            sig = inspect.signature(getattr(cls, b))
            # self, (cache), one argument per parameter axis
            assert len(sig.parameters) == 1 + has_cache + n_params, f"{cls.__name__}.{b}{sig}"
            if b.startswith("track_"):
                unit = getattr(getattr(cls, b), "unit", None) or getattr(cls, "unit", None)
                assert unit, f"{cls.__name__}.{b} has no unit"


def test_missing_model_is_skipped_not_failed(monkeypatch, tmp_path):
    """asv treats NotImplementedError in setup as 'skipped'."""
    import benchmarks.common as common

    monkeypatch.setenv("S2GATE_BENCH_MODELS", str(tmp_path))
    common.flat_graph.cache_clear()
    try:
        with pytest.raises(NotImplementedError):
            common.flat_graph("psnn")
        from benchmarks.bench_emulator import FastEngine

        with pytest.raises(NotImplementedError):
            FastEngine().setup("cnn_sinabs", 1, 0)
    finally:
        common.flat_graph.cache_clear()
        common.network.cache_clear()


def test_spikes_are_seeded_and_at_the_density():
    from benchmarks.common import spikes

    a = spikes("cnn_sinabs", 8, ticks=10, density=0.1)
    assert a.shape == (8, 10, 2, 34, 34) and a.dtype == bool
    assert (a == spikes("cnn_sinabs", 8, ticks=10, density=0.1)).all()
    # 184,960 Bernoulli(0.1) draws: the mean is within 0.1 +- 5 sigma (sigma = 0.0007)
    assert abs(a.mean() - 0.1) < 0.0035


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_scripts_define_nothing_asv_would_run(name):
    """asv collects module-level ``time_*``/``track_*``... functions from every module in benchmarks/."""
    import benchmarks

    if name not in {m.name for m in pkgutil.iter_modules(benchmarks.__path__)}:
        pytest.skip(f"benchmarks/{name}.py does not exist")
    mod = importlib.import_module(f"benchmarks.{name}")
    found = [n for n, v in vars(mod).items() if n.startswith(PREFIXES) and (inspect.isfunction(v) or inspect.isclass(v))]
    found += [f"{c.__name__}.{m}" for _, c in inspect.getmembers(mod, inspect.isclass) if c.__module__ == mod.__name__
              for m in vars(c) if m.startswith(PREFIXES)]
    assert found == [], f"benchmarks/{name}.py: asv would run {found}"
