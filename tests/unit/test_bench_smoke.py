"""bench/run --quick: every benchmark section runs (in throwaway namespaces) and reports numbers.

Root only (it creates network namespaces); must finish in under a minute.
"""

import json
import math
import os
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("cold_nat", "noop_reapply", "forwards_scale", "taps_scale", "hooks")

pytestmark = pytest.mark.root


def _numbers(node):
    """Every median_ms anywhere under node."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "median_ms":
                yield value
            else:
                yield from _numbers(value)
    elif isinstance(node, list):
        for value in node:
            yield from _numbers(value)


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: bench/run creates network namespaces")
def test_quick_bench_reports_every_section(tmp_path):
    t0 = time.monotonic()
    proc = subprocess.Popen([str(ROOT / "bench" / "run"), "--quick", "--out", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.terminate()  # bench/run removes its namespaces on SIGTERM
        out, err = proc.communicate(timeout=30)
        pytest.fail(f"bench/run --quick took more than 60 s:\n{err[-3000:]}")
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    assert elapsed < 60

    data = json.loads((tmp_path / "latest.json").read_text())
    assert (tmp_path / "latest.md").read_text().count("|") > 20
    for name in SECTIONS:
        section = data["sections"][name]
        assert section["status"] == "ok", (name, section)
        medians = list(_numbers(section))
        assert medians and all(_is_number(m) for m in medians), (name, medians)
    assert data["sections"]["dataplane"]["status"] in ("ok", "skipped")

    cold = data["sections"]["cold_nat"]
    for key in ("kvmnet apply (CLI)", "seed qemu-ifup-NAT (bash)", "raw ip/nft/dnsmasq script",
                "import probe (start + kvmnet's imports)"):
        assert cold[key]["median_ms"] > 0, key
    assert _is_number(cold["work_after_imports_ms"])
    assert cold["phases_apply"]["phases_median_ms"]["imports"] > 0
    noop = data["sections"]["noop_reapply"]
    assert noop["zero_writes"]["unchanged"], noop["zero_writes"]["changed"]
    assert noop["zero_writes"]["monitor_positive_control"]["nft"]["events"] > 0  # the monitors do see writes
    for size in data["sections"]["forwards_scale"]["sizes"].values():
        assert size["nft -f kvmnet's ruleset"]["median_ms"] > 0
        assert size["kvmnet firewall (from the phase driver)"]["apply"]["load step (exec: firewall)"]["median_ms"] > 0
    for size in data["sections"]["taps_scale"]["sizes"].values():
        assert size["ip -batch: create"]["median_ms"] > 0
        assert size["kvmnet per tap (ms)"]["create, netlink steps"] > 0
    hooks = data["sections"]["hooks"]
    assert hooks["kvmnet-ifup"]["median_ms"] > 0 and hooks["seed qemu-ifup-NAT (bridge exists)"]["median_ms"] > 0
    assert data["targets"] and all(t["result"] in ("PASS", "MISS", "n/a") for t in data["targets"])

    # bench/run execs its Python, so its namespaces are kvb<that pid>-<n>
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    assert not [n for n in left if n.startswith(f"kvb{proc.pid}-")], "bench left a namespace behind"
