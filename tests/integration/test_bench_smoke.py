"""bench/run --quick (the smoke mode CI runs): every section runs in its throwaway namespace,
nothing the phase driver should time is missing, and every section's figures are sane.

Root only (it creates network namespaces); must finish in under a minute.
"""

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # bench.sections: the result labels and sanity checks of each section
from bench.sections import SECTIONS  # noqa: E402

pytestmark = pytest.mark.root
QUICK_SKIPS = {"dataplane", "libvirt", "boot_lease"}  # iperf3 for seconds per path; libvirt: ~3 s per lease;
# boot_lease: TCG guest boots: full runs only


def _walk(node, path=""):
    """(path, key, value) for every key anywhere under node."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key, value
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One bench/run --quick for the whole module: (its results, its pid, its stdout)."""
    out_dir = tmp_path_factory.mktemp("bench")
    t0 = time.monotonic()
    proc = subprocess.Popen([str(ROOT / "bench" / "run"), "--quick", "--out", str(out_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.terminate()  # bench/run removes its namespaces on SIGTERM
        out, err = proc.communicate(timeout=30)
        pytest.fail(f"bench/run --quick took more than 60 s:\n{err[-3000:]}")
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    assert time.monotonic() - t0 < 60
    assert (out_dir / "latest.md").read_text().count("|") > 20
    return json.loads((out_dir / "latest.json").read_text()), proc.pid, out


def test_every_section_ran(quick):
    data, _, _ = quick
    assert set(data["sections"]) == {s.NAME for s in SECTIONS}
    for section in SECTIONS:
        res = data["sections"][section.NAME]
        want = "skipped" if section.NAME in QUICK_SKIPS else "ok"
        assert res["status"] == want, (section.NAME, res.get("error") or res.get("reason"))


@pytest.mark.parametrize("section", [s for s in SECTIONS if s.NAME not in QUICK_SKIPS], ids=lambda s: s.NAME)
def test_section_is_sane(quick, section):
    data, _, _ = quick
    res = data["sections"][section.NAME]
    assert section.sanity(res) == []
    medians = [v for _, k, v in _walk(res) if k == "median_ms"]
    assert medians and all(_is_number(m) and m >= 0 for m in medians), medians


def test_nothing_missing_from_the_phase_driver(quick):
    data, _, _ = quick
    found = [(p, k) for p, k, v in _walk(data) if k in ("not_instrumented", "missing") and v]
    assert not found
    summaries = [v for _, k, v in _walk(data["sections"]) if isinstance(v, dict) and "phases_median_ms" in v]
    assert len(summaries) >= 7  # cold apply/destroy, re-apply, 3 for forwards, 2 for taps
    for s in summaries:
        assert s["wrapped"] and s["phases_median_ms"]["imports"] > 0, s


def test_targets_and_tables(quick):
    data, _, out = quick
    assert data["targets"] and all(t["result"] in ("PASS", "MISS", "n/a") for t in data["targets"])
    for section in SECTIONS:
        if section.NAME not in QUICK_SKIPS:
            assert section.TITLE in out, section.TITLE
    assert "1d. Start-up: what one import costs" in out


def test_no_namespace_left_behind(quick):
    _, pid, _ = quick
    # bench/run execs its Python, so its namespaces are kvb<that pid>-<n>
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    assert not [n for n in left if n.startswith(f"kvb{pid}-")], "bench left a namespace behind"


def test_phases_fails_loudly_on_a_missing_target():
    """A function kvmnet moved must stop the phase driver, named, not be skipped."""
    code = ("import sys; sys.argv = ['phases.py', '--check']; import phases; "
            "phases.TARGETS['kvmnet.config:no_such_function'] = ('fixed', 'config'); sys.exit(phases.main())")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "bench" / "lib", capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert res.returncode == 1, res.stdout + res.stderr
    assert "kvmnet.config.no_such_function" in res.stderr
    ok = subprocess.run([sys.executable, "phases.py", "--check"], cwd=ROOT / "bench" / "lib", capture_output=True,
                        text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert ok.returncode == 0, ok.stderr
