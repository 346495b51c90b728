"""Section 2: a no-op re-apply of a big NAT network (taps + forwards): how long kvmnet takes to
find nothing to do, and proof that it wrote nothing (snapshots before/after, monitors during)."""

from __future__ import annotations

import time
from pathlib import Path

from bench.lib.common import KVMNET, LIB, PY, CommandFailed, log, rotate, sh, stats, timed
from bench.lib.phaserun import PHASE_ORDER, kv_env, phase_summary, phases_run, profile_kvmnet, work_after_imports
from bench.lib.report import Table, med, p95, target
from bench.lib.topologies import nat_big_toml
from bench.lib.zero_writes import Monitors, snapshot

NAME = "noop_reapply"
TITLE = "2. No-op re-apply"
PROBE = str(LIB / "importprobe.py")

REAPPLY_CLI = "kvmnet re-apply (CLI)"
IMPORT_PROBE = "import probe (start + kvmnet's imports)"
PASS = "python -c pass"
FIRST = "first apply (not a benchmark, n=1)"
DESTROY = "destroy at the end (n=1)"
PHASES, ZERO = "phases", "zero_writes"
WORK, WORK_CPU, WORK_IN = "work_after_imports_ms", "work_after_imports_cpu_ms", "work_after_imports_in_process_ms"
TIMED = (REAPPLY_CLI, IMPORT_PROBE, PASS)


def params(quick: bool, profiles: str | None) -> dict:
    if quick:
        return {"reps": 1, "guests": 10, "forwards": 100}
    return {"reps": 7, "guests": 100, "forwards": 1000, "profiles": profiles}


def settle(watched: list[Path]) -> tuple[dict, float]:
    """The kernel finishes by itself what follows making links (linkwatch, qdisc attach, bridge
    port notifications, up to a second or more later): the baseline is a host whose snapshots
    agree over 2 s (three snapshots 1 s apart). Returns it and how long that took."""
    before, t0, stable = snapshot(watched), time.monotonic(), 0
    while stable < 2 and time.monotonic() - t0 < 20:
        time.sleep(1)
        again = snapshot(watched)
        stable = stable + 1 if again == before else 0
        before = again
    return before, round(time.monotonic() - t0, 1)


def reapplies(p: dict, args: list[str], st: Path, modules: Path) -> tuple[dict, list[dict]]:
    """The timed loop: the CLI, the phase driver, the import probe and `python -c pass`."""
    samples = {k: [] for k in TIMED}
    ph: list[dict] = []
    tmp = Path(p["tmp"])
    for r in range(p["reps"]):
        for v in rotate([REAPPLY_CLI, "phases", IMPORT_PROBE, PASS], r):
            if v == REAPPLY_CLI:
                samples[v].append(timed([KVMNET, *args], env=kv_env(st), expect="already in sync"))
            elif v == "phases":
                ph.append(phases_run(args, st, tmp / "ph.json")[1])
                if ph[-1]["ops"]:
                    raise CommandFailed(f"re-apply ran steps: {ph[-1]['ops']}")
            elif v == IMPORT_PROBE:
                samples[v].append(timed([PY, PROBE, str(modules)]))
            else:
                samples[v].append(timed([PY, "-c", "pass"]))
        log(f"noop_reapply: rep {r + 1}/{p['reps']} done")
    return samples, ph


def measure(p: dict) -> dict:
    tmp = Path(p["tmp"])
    st, topo = tmp / "state", tmp / "big.toml"
    topo.write_text(nat_big_toml("big", p["guests"], p["forwards"]))
    args = ["apply", str(topo)]
    t_first = timed([KVMNET, *args], env=kv_env(st), expect="applied", timeout=600)
    timed([KVMNET, *args], env=kv_env(st), expect="already in sync")
    _, warm = phases_run(args, st, tmp / "ph.json")
    if warm["ops"]:
        raise CommandFailed(f"re-apply ran steps: {warm['ops']}")
    modules = tmp / "modules.txt"
    modules.write_text("\n".join(warm["modules"]) + "\n")
    watched = sorted(f for f in (st / "big").iterdir() if f.is_file())  # state.json, dnsmasq's files...
    before, settled_after = settle(watched)
    mon = Monitors(tmp, "reapply")
    try:
        samples, ph = reapplies(p, args, st, modules)
    finally:
        events = mon.stop()
    after = snapshot(watched)
    # positive control: the same monitors do see a change (an nft table and a link, added and removed)
    ctl = Monitors(tmp, "control")
    sh("nft add table inet kvb_canary && nft delete table inet kvb_canary && "
       "ip link add kvbcanary type bridge && ip link del kvbcanary")
    control = ctl.stop()
    if p.get("profiles"):
        profile_kvmnet(args, st, tmp, Path(p["profiles"]) / "noop-reapply.txt",
                       f"kvmnet apply (no-op re-apply: {p['guests']} taps, {p['forwards']} forwards)")
    t_destroy = timed([KVMNET, "destroy", str(topo)], env=kv_env(st), timeout=600)
    res = {"guests": p["guests"], "forwards": p["forwards"], FIRST: stats([t_first]), DESTROY: stats([t_destroy]),
           **{k: stats(v) for k, v in samples.items()}, PHASES: phase_summary(ph),
           ZERO: zero_writes(before, after, settled_after, events, control)}
    res[WORK] = round(med(res[REAPPLY_CLI]) - med(res[IMPORT_PROBE]), 3)
    res[WORK_CPU] = round(res[REAPPLY_CLI]["cpu_median_ms"] - res[IMPORT_PROBE]["cpu_median_ms"], 3)
    res[WORK_IN] = work_after_imports(res[PHASES])
    return res


def zero_writes(before: dict, after: dict, settled_after: float, events: dict, control: dict) -> dict:
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return {
        "unchanged": not changed, "changed": changed,
        "settled_after_s": settled_after,
        "changed_detail": {k: [before.get(k), after.get(k)] for k in changed if k.startswith("link ")},
        "compared": ["ip -d link (ifindex, flags, mtu, master, mac, group, operstate, linkinfo)",
                     "ip addr", "ip route table all", "nft -a list ruleset (with handles)",
                     "every file in the topology's state dir (mtime, inode, sha256)"],
        "nft_rules_with_handles": before["nft ruleset (with handles)"].count("# handle"),
        "links": sum(1 for k in before if k.startswith("link ")),
        "monitor_events_during_reapplies": events,
        "monitor_positive_control": control,
    }


# ----------------------------------------------------------------------------- reporting

def tables(s: dict) -> list[Table]:
    zw = s[ZERO]
    t = Table(f"{TITLE} ({s['guests']} taps, {s['forwards']} forwards)",
              ["measure", "median ms", "p95 ms", "min ms", "cpu ms", "n"])
    for k in TIMED:
        t.add(k, med(s[k]), p95(s[k]), s[k]["min_ms"], s[k].get("cpu_median_ms"), str(s[k]["n"]))
    pw = s[PHASES]["process_wall"]
    t.add("kvmnet re-apply via the phase driver (process)", med(pw), p95(pw), pw["min_ms"], pw.get("cpu_median_ms"), str(pw["n"]))
    t.add("work after imports (re-apply - import probe)", s[WORK], "", "", s.get(WORK_CPU), "")
    t.add("work after imports (in-process, phase driver)", s[WORK_IN], "", "", "", "")
    for phase in PHASE_ORDER[1:]:
        v = s[PHASES]["phases_median_ms"].get(phase)
        if v:
            t.add(f"  phase: {phase}", v, "", "", "", str(s[PHASES]["n"]))
    ev, ctl = zw["monitor_events_during_reapplies"], zw["monitor_positive_control"]
    t.notes += [
        f"zero writes: {'YES' if zw['unchanged'] else 'NO, changed: ' + ', '.join(zw['changed'])} "
        f"({zw['nft_rules_with_handles']} nft rules by handle, {zw['links']} links by ifindex/flags, addresses, "
        "routes, state.json and dnsmasq files compared before/after all re-applies)",
        f"monitors during all re-applies: nft monitor {ev['nft']['events']} events, ip monitor {ev['ip']['events']} "
        f"events (positive control, one table + one link added and removed: {ctl['nft']['events']} and "
        f"{ctl['ip']['events']})",
    ]
    return [t]


def no_events(s: dict) -> bool:
    ev = s[ZERO]["monitor_events_during_reapplies"]
    return s[ZERO]["unchanged"] and ev["nft"]["events"] == 0 and ev["ip"]["events"] == 0


def targets(s: dict) -> list[dict]:
    big = (s["guests"], s["forwards"]) == (100, 1000)  # the size the targets are set for
    w, wi = s[WORK], s[WORK_IN]
    label = f"no-op re-apply ({s['guests']} taps, {s['forwards']} forwards)"
    zw = s[ZERO]
    ev = zw["monitor_events_during_reapplies"]
    return [
        target(f"{label}: work after imports <= 100 ms (CLI - import probe)", f"{w:.0f} ms", "<= 100 ms",
               (w <= 100) if big else None, "" if big else "--quick size"),
        target(f"{label}: work after imports <= 100 ms (in-process)", f"{wi:.0f} ms", "<= 100 ms",
               (wi <= 100) if big else None, "" if big else "--quick size"),
        target(f"{label}: zero writes", "none" if no_events(s) else
               f"changed: {zw['changed']}, events nft {ev['nft']['events']} ip {ev['ip']['events']}",
               "no change, no events", no_events(s)),
    ]


def sanity(s: dict) -> list[str]:
    bad = [f"{k}: median {med(s[k])}" for k in TIMED if not (med(s[k]) or 0) > 0]
    if not no_events(s):
        bad.append(f"the no-op re-apply wrote: {s[ZERO]['changed']}, {s[ZERO]['monitor_events_during_reapplies']}")
    ctl = s[ZERO]["monitor_positive_control"]
    if not (ctl["nft"]["events"] > 0 and ctl["ip"]["events"] > 0):
        bad.append(f"the monitors saw no change in the positive control: {ctl}")
    if s[PHASES]["ops"]:
        bad.append(f"re-apply ran steps: {s[PHASES]['ops']}")
    if not s[PHASES]["phases_median_ms"].get("observe", 0) > 0:
        bad.append("re-apply phase 'observe' took no time: not instrumented?")
    return bad
