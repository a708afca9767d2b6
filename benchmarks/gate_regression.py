"""Gate a change on speed with the installed environment: exit 1 if a benchmark got slower.

    python benchmarks/gate_regression.py BASE HEAD [--factor 1.2] [-b REGEX] [--machine NAME] [--no-run]

The offline twin of ``asv continuous --factor 1.2 BASE HEAD`` for machines where asv cannot
build a virtualenv per commit (no package index): it benchmarks each commit with the
*existing* environment (``asv run --python=same --set-commit-hash SHA``), then runs
``asv compare --factor F --split BASE HEAD`` and exits

* 0 if no benchmark is slower by more than ``--factor`` (asv's "+" rows: significant and
  above the factor),
* 1 if one is (or a benchmark that worked at BASE fails at HEAD: asv's "!" rows),
* 2 if something else went wrong (bad revision, asv missing, no results).

A commit other than the checked-out, unmodified HEAD is checked out into a temporary
``git worktree`` (the working tree is not touched) and its packages are put first on the
benchmark processes' ``PYTHONPATH`` (asv passes ``ASV_PYTHONPATH`` on; the editable install's
finder comes after the path). As with ``asv continuous``, the *current* ``benchmarks/`` and
bundled models measure both commits. Results are saved under ``.asv/results/<machine>/`` and
show in ``asv publish``. Run ``asv machine --yes`` once first (asv keeps ``~/.asv-machine.json``).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("s2common", "reference", "s2emu", "harness")


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def _asv() -> List[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "asv")
    if os.path.exists(exe):
        return [exe]
    found = shutil.which("asv")
    if not found:
        raise SystemExit("gate_regression: asv is not installed (pip install s2gate[bench])")
    return [found]


def regressions(compare_output: str) -> List[Tuple[str, str, str]]:
    """(mark, ratio, benchmark) of the rows of ``asv compare`` output marked "+" (slower beyond
    the factor) or "!" (failed at the new revision)."""
    out = []
    for line in compare_output.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 5 and cells[0] in ("+", "!"):
            out.append((cells[0], cells[3], cells[4]))
    return out


def is_clean_head(sha: str) -> bool:
    """Whether ``sha`` is the checked-out commit and no tracked package file is modified."""
    if _git("rev-parse", "HEAD") != sha:
        return False
    return _git("status", "--porcelain", "--untracked-files=no", "--", *PACKAGES) == ""


def run_commit(sha: str, asv: List[str], machine: Optional[str], bench: Optional[str], extra: List[str]) -> int:
    """``asv run --python=same --set-commit-hash sha`` with the project code of ``sha``."""
    cmd = asv + ["run", "--python=same", "--set-commit-hash", sha] + (["--machine", machine] if machine else []) \
        + (["-b", bench] if bench else []) + extra
    if is_clean_head(sha):
        print(f"gate_regression: {sha[:8]} is the checked-out HEAD: benchmarking the installed code", flush=True)
        return subprocess.run(cmd, cwd=ROOT).returncode
    tmp = tempfile.mkdtemp(prefix=f"s2gate-asv-{sha[:8]}-")
    tree = os.path.join(tmp, "tree")
    try:
        _git("worktree", "add", "--detach", tree, sha)
        env = dict(os.environ)
        env["ASV_PYTHONPATH"] = tree + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        probe = subprocess.run([sys.executable, "-c", "import " + ", ".join(PACKAGES) + "; import sys; "
                                "print('\\n'.join(m.__file__ for m in (" + ", ".join(PACKAGES) + ")))"],
                               env=dict(env, PYTHONPATH=env["ASV_PYTHONPATH"]), cwd=tmp, capture_output=True, text=True)
        wrong = [f for f in probe.stdout.split() if not f.startswith(tree)]
        if probe.returncode != 0 or wrong:
            raise RuntimeError(f"cannot import the packages of {sha[:8]} from its worktree: "
                               f"{probe.stderr.strip().splitlines()[-1:] or wrong}")
        print(f"gate_regression: {sha[:8]} checked out in {tree}; benchmarking it", flush=True)
        return subprocess.run(cmd, cwd=ROOT, env=env).returncode
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", tree], cwd=ROOT, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("base", help="the reference revision (e.g. main)")
    p.add_argument("head", nargs="?", default="HEAD", help="the revision being gated (default HEAD)")
    p.add_argument("--factor", "-f", type=float, default=1.2, help="allowed slow-down ratio (default 1.2)")
    p.add_argument("--bench", "-b", default=None, metavar="REGEX", help="only benchmarks matching REGEX")
    p.add_argument("--machine", "-m", default=None, help="asv machine name (default: this machine's)")
    p.add_argument("--no-run", action="store_true", help="compare saved results only")
    p.add_argument("--quick", action="store_true", help="pass --quick to asv run (smoke only: one sample each)")
    args = p.parse_args(argv)

    asv = _asv()
    try:
        base, head = _git("rev-parse", "--verify", args.base + "^{commit}"), _git("rev-parse", "--verify",
                                                                                  args.head + "^{commit}")
    except subprocess.CalledProcessError as exc:
        print(f"gate_regression: unknown revision ({exc.stderr.strip()})", file=sys.stderr)
        return 2
    if not args.no_run:
        extra = ["--quick"] if args.quick else []
        for sha in (base, head):
            try:
                rc = run_commit(sha, asv, args.machine, args.bench, extra)
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                print(f"gate_regression: {exc}", file=sys.stderr)
                return 2
            if rc not in (0, 2):  # asv run exits 2 when a benchmark failed; compare reports those
                print(f"gate_regression: asv run failed for {sha[:8]} (exit {rc})", file=sys.stderr)
                return 2
    cmp = asv + ["compare", "--factor", str(args.factor), "--split", "--python=same", base, head] + \
        (["--machine", args.machine] if args.machine else [])
    res = subprocess.run(cmp, cwd=ROOT, capture_output=True, text=True)
    print(res.stdout, end="")
    if res.returncode != 0:
        print(res.stderr, end="", file=sys.stderr)
        return 2
    if args.bench:
        pattern = re.compile(args.bench)
        bad = [r for r in regressions(res.stdout) if pattern.search(r[2])]
    else:
        bad = regressions(res.stdout)
    if bad:
        print(f"gate_regression: {len(bad)} benchmark(s) slower than {args.factor}x or failing at {head[:8]}:")
        for mark, ratio, name in bad:
            print(f"  {mark} {ratio:>8}  {name}")
        return 1
    print(f"gate_regression: no benchmark slower than {args.factor}x ({base[:8]} -> {head[:8]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
