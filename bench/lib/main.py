"""bench/run: kvmnet against the seed's recipe and raw tools, in throwaway network namespaces.

Each section runs in a network namespace made for it (`ip netns add kvb<PID>-<n>`) through
`ip netns exec NS python bench/lib/worker.py SECTION ...`; the namespace, every process left in
it and the temporary directory are removed afterwards, also on failure or Ctrl-C. This machine's
own network namespace is never touched.

    bench/run [--quick] [--sections a,b] [--out DIR] [--no-profiles]

Prints the tables, writes DIR/latest.json and DIR/latest.md (--quick: DIR/quick.*), and with
profiles DIR/profiles/*.txt.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH, PY, REPO, log  # noqa: E402

WORKER = str(Path(__file__).resolve().parent / "worker.py")
ORDER = ["cold_nat", "noop_reapply", "forwards_scale", "taps_scale", "hooks", "dataplane"]
TITLES = {
    "cold_nat": "1. Cold apply of the seed's NAT network (topologies/nat.toml)",
    "noop_reapply": "2. No-op re-apply",
    "forwards_scale": "3. Port forwards: N DNAT rules",
    "taps_scale": "4. Taps: N created on a bridge, then deleted",
    "hooks": "5. QEMU hook latency (tap attach/detach, network already up)",
    "dataplane": "6. Data plane floor (no guest)",
}


def params(quick: bool, profiles_dir: str | None) -> dict:
    prof = None if quick else profiles_dir
    if quick:
        return {
            "cold_nat": {"reps": 1},
            "noop_reapply": {"reps": 1, "guests": 10, "forwards": 100},
            "forwards_scale": {"reps": 1, "sizes": [100], "per_rule_full_max": 1000, "per_rule_big_reps": 1},
            "taps_scale": {"reps": 1, "sizes": [10], "perlink_full_max": 100, "perlink_big_reps": 1,
                           "perop_full_max": 1000, "perop_big_reps": 1},
            "hooks": {"rounds": 3},
            "dataplane": {"skip": "--quick"},
        }
    return {
        "cold_nat": {"reps": 7, "profiles": prof, "dhcp_runs": 3},
        "noop_reapply": {"reps": 7, "guests": 100, "forwards": 1000, "profiles": prof},
        "forwards_scale": {"reps": 5, "sizes": [10, 100, 1000, 5000], "per_rule_full_max": 1000,
                           "per_rule_big_reps": 1, "profiles": prof},
        "taps_scale": {"reps": 5, "sizes": [10, 100, 1000], "perlink_full_max": 100, "perlink_big_reps": 1,
                       "perop_full_max": 100, "perop_big_reps": 2, "profiles": prof},
        "hooks": {"rounds": 50},
        "dataplane": {"seconds": 3, "reps": 3},
    }


# ------------------------------------------------------------------ namespaces and cleanup

class Interrupted(Exception):
    pass


def _on_signal(signum, _frame):
    raise Interrupted(f"signal {signum}")


def ns_delete(name: str) -> None:
    """Stop every process in our namespace (all started by this run), then remove it."""
    res = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
    pids = [int(x) for x in res.stdout.split() if x.isdigit()]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 2
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if os.path.exists(f"/proc/{p}")]
            time.sleep(0.02)
        if not pids:
            break
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


def stale_cleanup() -> None:
    """Namespaces and temp dirs of an earlier bench run that was SIGKILLed (its pid is gone)."""
    res = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    for line in res.stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith("kvb") and "-" in name and name[3:].split("-")[0].isdigit():
            if not os.path.exists(f"/proc/{name[3:].split('-')[0]}"):
                log(f"removing stale namespace {name} (from a dead bench run)")
                ns_delete(name)
    for d in Path(tempfile.gettempdir()).glob("kvb*-*"):
        pid = d.name[3:].split("-")[0]
        if d.is_dir() and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(d, ignore_errors=True)


def run_section(section: str, index: int, p: dict, timeout: float) -> dict:
    if p.get("skip"):
        return {"status": "skipped", "reason": p["skip"]}
    if section == "dataplane" and not shutil.which("iperf3"):
        return {"status": "skipped", "reason": "iperf3 is not installed (apt-get install -y iperf3)"}
    ns = f"kvb{os.getpid()}-{index}"
    peers = [f"{ns}{x}" for x in "ab"[:2 if section == "dataplane" else 1 if p.get("dhcp_runs") else 0]]
    tmp = Path(tempfile.mkdtemp(prefix=f"kvb{os.getpid()}-{section}-"))
    os.chmod(tmp, 0o755)  # dnsmasq drops privileges; the seed's lease file lives here
    made = []
    try:
        for name in [ns, *peers]:
            subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
            made.append(name)
            subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        p = dict(p, tmp=str(tmp), peers=peers)
        (tmp / "params.json").write_text(json.dumps(p))
        out = tmp / "out.json"
        log(f"{section}: running in namespace {ns}")
        proc = subprocess.run(["ip", "netns", "exec", ns, PY, WORKER, section, str(tmp / "params.json"), str(out)],
                              timeout=timeout)
        if out.exists():
            return json.loads(out.read_text())
        return {"status": "error", "error": f"worker exited {proc.returncode} without results"}
    except subprocess.TimeoutExpired:
        return {"status": "error", "error": f"timed out after {timeout:.0f} s"}
    finally:
        for name in made:
            ns_delete(name)
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------- reporting

def fmt(x, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, str):
        return x
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.{max(digits, 2)}f}"


def med(d: dict | None):
    return d.get("median_ms") if isinstance(d, dict) else None


def p95(d: dict | None):
    return d.get("p95_ms") if isinstance(d, dict) else None


def ratio(a, b) -> str:
    if a is None or b is None or not b:
        return "-"
    return f"{a / b:.2f}x"


class Table:
    def __init__(self, title: str, columns: list[str]):
        self.title, self.columns, self.rows, self.notes = title, columns, [], []

    def add(self, *cells) -> None:
        self.rows.append([c if isinstance(c, str) else fmt(c) for c in cells])

    def text(self) -> str:
        widths = [max(len(str(r[i])) for r in [self.columns, *self.rows]) for i in range(len(self.columns))]
        line = lambda cells: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)  # noqa: E731
                                       for i, (c, w) in enumerate(zip(cells, widths)))
        out = [self.title, line(self.columns), line(["-" * w for w in widths])]
        out += [line(r) for r in self.rows]
        out += [f"  note: {n}" for n in self.notes]
        return "\n".join(out)

    def markdown(self) -> str:
        out = [f"**{self.title}**", "", "| " + " | ".join(self.columns) + " |",
               "|" + "|".join(["---"] + ["---:"] * (len(self.columns) - 1)) + "|"]
        out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in self.rows]
        if self.notes:
            out += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(out)


PHASE_ORDER = ["interpreter start", "imports", "config", "observe", "plan", "netlink", "sysctl", "firewall",
               "dnsmasq", "other steps", "state record", "verify (observe + plan again)", "other python"]


def phase_rows(t: Table, summaries: list[dict | None], start_ms: float | None) -> None:
    for phase in PHASE_ORDER:
        if phase == "interpreter start":
            t.add(phase + " (python -c pass)", *[start_ms for _ in summaries])
            continue
        vals = [s["phases_median_ms"].get(phase) if s else None for s in summaries]
        if any(v for v in vals):
            t.add(phase, *vals)
    t.add("in-process total (+ start = process)", *[s["in_process_total"]["median_ms"] if s else None for s in summaries])


def tables(results: dict) -> list[Table]:
    out = []
    r = results["sections"]

    s = r.get("cold_nat", {})
    if s.get("status") == "ok":
        seed = med(s["seed qemu-ifup-NAT (bash)"])
        t = Table(TITLES["cold_nat"], ["variant", "median ms", "p95 ms", "min ms", "cpu ms", "n", "vs seed"])
        for k in ("kvmnet apply (CLI)", "seed qemu-ifup-NAT (bash)", "raw ip/nft/dnsmasq script",
                  "python -c pass", "import probe (start + kvmnet's imports)"):
            t.add(k, med(s[k]), p95(s[k]), s[k]["min_ms"], s[k].get("cpu_median_ms"), str(s[k]["n"]), ratio(med(s[k]), seed))
        pw = s["phases_apply"]["process_wall"]
        t.add("kvmnet apply via the phase driver (process)", med(pw), p95(pw), pw["min_ms"], pw.get("cpu_median_ms"),
              str(pw["n"]), ratio(med(pw), seed))
        t.add("kvmnet work after imports (apply - import probe)", s["work_after_imports_ms"], "", "",
              s.get("work_after_imports_cpu_ms"), "", ratio(s["work_after_imports_ms"], seed))
        t.add("kvmnet work after imports (in-process, phase driver)", s["work_after_imports_in_process_ms"], "", "", "", "",
              ratio(s["work_after_imports_in_process_ms"], seed))
        t.notes.append("cpu ms: user+sys CPU time of the process and the children it waited for (median); "
                       "less sensitive to other load on the machine than wall time")
        t.notes += [
            "every variant ends with dnsmasq's launcher returned (pid file written): 'dnsmasq ready'",
            "kvmnet does more than the seed: 2 taps (the seed attaches 1 tap QEMU made), an nft table with "
            "filter rules and a port forward (the seed: one MASQUERADE), IPv6 off on the bridge, route_localnet, "
            "a state record, and a verifying re-observe",
            "first DHCP lease: see 1c; the seed starts dnsmasq without --no-ping, so it pings an address "
            "before offering it; kvmnet's conf has no-ping",
            "raw = kvmnet's own plan (`kvmnet plan --json`) as ip/echo/nft/dnsmasq commands in one bash script",
        ]
        out.append(t)
        t2 = None
        fl = s.get("first_lease", {})
        if "note" in fl:
            t2 = Table("1c. After 'ready': a new guest's first DHCP lease, and its bridge port's STP wait",
                       ["", "median ms", "p95 ms", "n"])
            for k, v in fl.items():
                if isinstance(v, dict) and "median_ms" in v:
                    t2.add(k, med(v), p95(v), str(v["n"]))
            for who, b in s.get("bridge_stp", {}).items():
                t2.add(f"{who}'s virbr0: STP {'on' if b['stp_state'] else 'off'}, forward_delay {b['forward_delay_s']:g} s: "
                       "a new port forwards after", b["new_port_forwards_after_s"] * 1000, "", "computed")
            t2.notes.append(fl["note"])
            t2.notes.append("the seed's `brctl setfd virbr0 0` (here `ip link set virbr0 type bridge forward_delay 0`) "
                            "is refused by the kernel with STP on (ERANGE), so its bridge keeps the 15 s default")
        t = Table("1b. kvmnet cold apply / destroy, where the time goes (medians, ms; phase driver)",
                  ["phase", "apply", "destroy"])
        phase_rows(t, [s["phases_apply"], s["phases_destroy"]], med(s["python -c pass"]))
        t.notes.append("phase driver: bench/lib/phases.py runs kvmnet.cli.main in-process with kvmnet's functions "
                       "wrapped; imports include pyroute2, imported lazily at the first netlink call")
        missing = sorted(set(s["phases_apply"]["not_instrumented"]) | set(s["phases_destroy"]["not_instrumented"]))
        if missing:
            t.notes.append("not instrumented (renamed or gone in kvmnet; time lands in the caller's phase): " + ", ".join(missing))
        it = s.get("apply_importtime")
        if it:
            t.notes.append(f"-X importtime of kvmnet.cli + kvmnet.apply + pyroute2: {it['total_ms']:.0f} ms; largest: "
                           + ", ".join(f"{k} {v:.0f}" for k, v in list(it["largest_any_depth_ms"].items())[:8]))
        imps = s["phases_apply"].get("imports_top_ms", {})
        if imps:
            t.notes.append("largest imports (apply, ms, one run): " + ", ".join(f"{k} {v:.0f}" for k, v in list(imps.items())[:6]))
        out.append(t)
        if t2:
            out.append(t2)

    s = r.get("noop_reapply", {})
    if s.get("status") == "ok":
        zw = s["zero_writes"]
        t = Table(f"{TITLES['noop_reapply']} ({s['guests']} taps, {s['forwards']} forwards)",
                  ["measure", "median ms", "p95 ms", "min ms", "cpu ms", "n"])
        for k in ("kvmnet re-apply (CLI)", "import probe (start + kvmnet's imports)", "python -c pass"):
            t.add(k, med(s[k]), p95(s[k]), s[k]["min_ms"], s[k].get("cpu_median_ms"), str(s[k]["n"]))
        pw = s["phases"]["process_wall"]
        t.add("kvmnet re-apply via the phase driver (process)", med(pw), p95(pw), pw["min_ms"], pw.get("cpu_median_ms"), str(pw["n"]))
        t.add("work after imports (re-apply - import probe)", s["work_after_imports_ms"], "", "",
              s.get("work_after_imports_cpu_ms"), "")
        t.add("work after imports (in-process, phase driver)", s["work_after_imports_in_process_ms"], "", "", "", "")
        for phase in PHASE_ORDER[1:]:
            v = s["phases"]["phases_median_ms"].get(phase)
            if v:
                t.add(f"  phase: {phase}", v, "", "", "", str(s["phases"]["n"]))
        ev = zw["monitor_events_during_reapplies"]
        ctl = zw["monitor_positive_control"]
        t.notes += [
            f"zero writes: {'YES' if zw['unchanged'] else 'NO, changed: ' + ', '.join(zw['changed'])} "
            f"({zw['nft_rules_with_handles']} nft rules by handle, {zw['links']} links by ifindex/flags, addresses, "
            "routes, state.json and dnsmasq files compared before/after all re-applies)",
            f"monitors during all re-applies: nft monitor {ev['nft']['events']} events, ip monitor {ev['ip']['events']} "
            f"events (positive control, one table + one link added and removed: {ctl['nft']['events']} and "
            f"{ctl['ip']['events']})",
        ]
        out.append(t)

    s = r.get("forwards_scale", {})
    if s.get("status") == "ok":
        sizes = list(s["sizes"])
        t = Table(TITLES["forwards_scale"] + " (medians, ms)", ["", *[f"N={n}" for n in sizes]])

        def row(label, getter):
            t.add(label, *[getter(s["sizes"][n]) for n in sizes])

        fw = lambda n, what, k: med(n["kvmnet firewall (from the phase driver)"][what][k])  # noqa: E731
        row("kvmnet apply (whole process)", lambda n: med(n["kvmnet apply (whole process)"]))
        row("kvmnet re-apply (whole process)", lambda n: med(n["kvmnet re-apply (whole process)"]))
        row("kvmnet destroy (whole process)", lambda n: med(n["kvmnet destroy (whole process)"]))
        row("kvmnet firewall, apply: nft -f step", lambda n: fw(n, "apply", "load step (exec: firewall)"))
        row("kvmnet firewall, apply: all fw work", lambda n: fw(n, "apply", "all firewall work (render, nft list, load, verify)"))
        row("kvmnet firewall, re-apply: all fw work", lambda n: fw(n, "reapply", "all firewall work (render, nft list, load, verify)"))
        row("kvmnet firewall, destroy: nft step", lambda n: fw(n, "destroy", "load step (exec: firewall)"))
        row("kvmnet config parse+validate (apply)", lambda n: n["phases"]["apply"]["phases_median_ms"].get("config"))
        row("nft -f kvmnet's ruleset", lambda n: med(n["nft -f kvmnet's ruleset"]))
        row("nft -f again (replace)", lambda n: med(n["nft -f kvmnet's ruleset again (replace)"]))
        row("nft delete table", lambda n: med(n["nft delete table"]))
        row("iptables-nft, one process per rule", lambda n: med(n.get("iptables-nft, one process per rule")))
        row("iptables-nft-restore --noflush", lambda n: med(n["iptables-restore --noflush (nft backend), one process"]))
        row("python-iptables, one commit (process)", lambda n: med(n["python-iptables (legacy), one commit, whole process"]))
        row("  of which commit()", lambda n: n["python-iptables split (one run)"].get("commit_s"))
        row("ratio: kvmnet fw all / nft -f", lambda n: ratio(fw(n, "apply", "all firewall work (render, nft list, load, verify)"),
                                                         med(n["nft -f kvmnet's ruleset"])))
        row("ratio: kvmnet nft -f step / nft -f", lambda n: ratio(fw(n, "apply", "load step (exec: firewall)"),
                                                               med(n["nft -f kvmnet's ruleset"])))
        row("ratio: per-rule iptables / kvmnet fw all", lambda n: ratio(med(n.get("iptables-nft, one process per rule")),
                                                                     fw(n, "apply", "all firewall work (render, nft list, load, verify)")))
        for n in sizes:
            note = s["sizes"][n].get("iptables-nft, one process per rule", {}).get("note")
            if note:
                t.notes.append(f"per-rule iptables at N={n}: {note}")
        t.notes += [
            "iptables baselines: N x `-t nat -A PREROUTING -p tcp -d 203.0.113.1 --dport P -j DNAT --to-destination G:8080`"
            " + one MASQUERADE (the seed's form), iptables-nft (this machine's `iptables`); python-iptables writes legacy xtables",
            "nft -f: kvmnet's own rendered ruleset (nft.render(topo, table).text: map of N elements + filter/nat chains)",
            "kvmnet fw all = render + `nft list` observe + choose backend + the nft -f step + the verifying re-observe",
            "kvmnet runs here go through the phase driver (kvmnet.cli.main in one process per command, functions "
            "wrapped): its process wall is the command's; sections 1-2 time both ways",
        ]
        g = growth(s)
        if g:
            t.notes += g["notes"]
        out.append(t)

    s = r.get("taps_scale", {})
    if s.get("status") == "ok":
        sizes = list(s["sizes"])
        t = Table(TITLES["taps_scale"] + " (medians, ms)", ["", *[f"N={n}" for n in sizes]])

        def row(label, getter):
            t.add(label, *[getter(s["sizes"][n]) for n in sizes])

        nl = lambda n, what: med(n["kvmnet netlink steps (from the phase driver)"][what])  # noqa: E731
        row("kvmnet apply (whole process)", lambda n: med(n["kvmnet apply (whole process)"]))
        row("kvmnet apply: netlink steps", lambda n: nl(n, "apply"))
        row("ip, one process per operation: create", lambda n: med(n["ip, one process per operation: create"]))
        row("ip -batch: create", lambda n: med(n["ip -batch: create"]))
        row("kvmnet destroy (whole process)", lambda n: med(n["kvmnet destroy (whole process)"]))
        row("kvmnet destroy: netlink steps", lambda n: nl(n, "destroy"))
        row("ip, one process per operation: delete", lambda n: med(n.get("ip, one process per operation: delete")))
        row("ip -batch: delete (link del per tap)", lambda n: med(n["ip -batch: delete (one link del per tap)"]))
        row("ip link del group (one request)", lambda n: med(n["ip link del group (+ bridge)"]))
        row("kvmnet per tap: create, netlink", lambda n: n["kvmnet per tap (ms)"]["create, netlink steps"])
        row("kvmnet per tap: create, whole apply", lambda n: n["kvmnet per tap (ms)"]["create, whole apply"])
        row("kvmnet per tap: delete, netlink", lambda n: n["kvmnet per tap (ms)"]["delete, netlink steps"])
        row("kvmnet per tap: delete, whole destroy", lambda n: n["kvmnet per tap (ms)"]["delete, whole destroy"])
        row("ratio: kvmnet netlink create / ip -batch", lambda n: ratio(nl(n, "apply"), med(n["ip -batch: create"])))
        row("ratio: kvmnet apply / ip -batch", lambda n: ratio(med(n["kvmnet apply (whole process)"]), med(n["ip -batch: create"])))
        for n in sizes:
            for k, v in s["sizes"][n].items():
                if isinstance(v, dict) and v.get("note"):
                    t.notes.append(f"N={n}, {k}: {v['note']}")
        t.notes += ["kvmnet runs through the phase driver (one process per command), as in section 3",
                    "kvmnet: an isolated network (bridge, no address, no dnsmasq) with N guests of one NIC; "
                    "ip: the same bridge + `tuntap add ... vnet_hdr` + `link set T master BR group G up` per tap",
                    "deleting links one request each is kernel-bound (~20 ms per link here); a link group goes in one request"]
        ops = s["sizes"][sizes[-1]]["phases"]["destroy"]["ops"]
        t.notes.append(f"kvmnet destroy steps at N={sizes[-1]}: {ops}")
        out.append(t)

    s = r.get("hooks", {})
    if s.get("status") == "ok":
        seed = med(s["seed qemu-ifup-NAT (bridge exists)"])
        t = Table(f"{TITLES['hooks']}, {s['rounds']} calls each",
                  ["hook", "median ms", "p95 ms", "min ms", "cpu ms", "vs seed ifup"])
        for k in ("kvmnet-ifup", "seed qemu-ifup-NAT (bridge exists)", "bare bash hook: ip link set master up",
                  "kvmnet-ifdown", "bare bash hook: ip link set nomaster down", "python -c pass",
                  "kvmnet-ifup without cached bytecode (PYTHONDONTWRITEBYTECODE=1, no __pycache__)"):
            if k in s:
                t.add(k, med(s[k]), p95(s[k]), s[k]["min_ms"], s[k].get("cpu_median_ms"),
                      ratio(med(s[k]), seed) if "down" not in k else "")
        imp = s["ifup_importtime"]
        t.notes.append(f"kvmnet-ifup imports: {imp['total_ms']:.1f} ms in all (-X importtime, one run); top: "
                       + ", ".join(f"{k} {v:.1f}" for k, v in list(imp["top_level_ms"].items())[:6]))
        t.notes.append("the seed's ifup with the bridge up still appends a MASQUERADE rule (iptables-nft) and runs "
                       "`ps -ef | grep dnsmasq` on every call")
        out.append(t)

    s = r.get("dataplane", {})
    if s.get("status") == "ok":
        t = Table(TITLES["dataplane"], ["path", "Gbit/s (median)", "RTT min µs", "RTT avg µs"])
        for k in ("veth", "veth -> bridge -> veth"):
            t.add(k, s[k]["gbit_s_median"], s[k]["rtt_min_us"], s[k]["rtt_avg_us"])
        t.notes.append(s["note"])
        out.append(t)
    elif s:
        t = Table(TITLES["dataplane"], ["status", "reason"])
        t.add(s.get("status", "?"), s.get("reason") or s.get("error", ""))
        out.append(t)
    for name in ORDER:
        s = r.get(name, {})
        if s.get("status") == "error" and name != "dataplane":
            t = Table(TITLES[name], ["status", "error"])
            t.add("ERROR", s["error"][:300])
            out.append(t)
    return out


def growth(s: dict) -> dict | None:
    """How each series grows with N. Small-N times are mostly constant cost plus noise, so the
    verdict uses the N-dependent part, t(N) - t(N_min), between the two largest sizes: its
    exponent k in t ~ N^k (1 = linear; > 1.25 is called faster than linear)."""
    sizes = [n for n in s["sizes"]]
    if len(sizes) < 3:
        return None

    def work(n):  # kvmnet apply in-process time without imports (no interpreter start, no imports)
        ph = s["sizes"][n]["phases"]["apply"]
        return ph["in_process_total"]["median_ms"] - ph["phases_median_ms"].get("imports", 0.0)

    def spread(d):  # how far apart repeated runs land at the smallest N (p95 - min), if known
        return (d["p95_ms"] - d["min_ms"]) if isinstance(d, dict) and d.get("p95_ms") is not None else 0.0

    noise = {"kvmnet apply (whole process)": spread(s["sizes"][sizes[0]]["kvmnet apply (whole process)"]),
             "nft -f": spread(s["sizes"][sizes[0]]["nft -f kvmnet's ruleset"])}
    series = {
        "kvmnet apply (whole process)": [med(s["sizes"][n]["kvmnet apply (whole process)"]) for n in sizes],
        "kvmnet apply, in-process work after imports": [work(n) for n in sizes],
        "kvmnet firewall, all fw work": [med(s["sizes"][n]["kvmnet firewall (from the phase driver)"]["apply"]
                                             ["all firewall work (render, nft list, load, verify)"]) for n in sizes],
        "kvmnet config parse+validate": [s["sizes"][n]["phases"]["apply"]["phases_median_ms"].get("config", 0) for n in sizes],
        "nft -f": [med(s["sizes"][n]["nft -f kvmnet's ruleset"]) for n in sizes],
        "iptables-nft per rule": [med(s["sizes"][n].get("iptables-nft, one process per rule")) for n in sizes],
    }
    out = {"marginal_us_per_forward": {}, "exponent": {}, "linear": {}, "notes": []}
    ns = [int(n) for n in sizes]
    for label, ys in series.items():
        if None in ys:
            continue
        slopes = [(ys[i + 1] - ys[i]) * 1000 / (ns[i + 1] - ns[i]) for i in range(len(ns) - 1)]
        out["marginal_us_per_forward"][label] = {f"{sizes[i]}->{sizes[i + 1]}": round(x, 1) for i, x in enumerate(slopes)}
        a, b = ys[-2] - ys[0], ys[-1] - ys[0]
        if a <= noise.get(label, 0.0) or b <= 0:
            k, verdict = None, (f"not judged: t(N={sizes[-2]}) - t(N={sizes[0]}) = {a:.0f} ms is within the run-to-run "
                                f"spread at N={sizes[0]} ({noise.get(label, 0.0):.0f} ms)"
                                + ("; see the in-process series" if "whole process" in label else ""))
        else:
            k = math.log(b / a) / math.log((ns[-1] - ns[0]) / (ns[-2] - ns[0]))
            verdict = "linear" if k <= 1.25 else "FASTER THAN LINEAR"
        out["exponent"][label] = None if k is None else round(k, 2)
        out["linear"][label] = None if k is None else k <= 1.25
        out["notes"].append(f"growth of {label}: µs per extra forward "
                            + ", ".join(f"{sizes[i]}->{sizes[i + 1]}: {x:,.1f}" for i, x in enumerate(slopes))
                            + (f"; t - t(N={sizes[0]}) ~ N^{k:.2f} from N={sizes[-2]} to {sizes[-1]}" if k is not None else "")
                            + f" -> {verdict}")
    return out


def evaluate(results: dict) -> list[dict]:
    """Each target: what is compared, the measured value, the threshold, pass or miss."""
    r = results["sections"]
    out = []

    def target(name, value, threshold, ok, detail=""):
        out.append({"target": name, "measured": value, "threshold": threshold,
                    "result": "n/a" if ok is None else ("PASS" if ok else "MISS"), "detail": detail})

    fs = r.get("forwards_scale", {})
    if fs.get("status") == "ok" and "1000" in fs["sizes"]:
        n = fs["sizes"]["1000"]
        fwk = n["kvmnet firewall (from the phase driver)"]["apply"]
        allw, load = med(fwk["all firewall work (render, nft list, load, verify)"]), med(fwk["load step (exec: firewall)"])
        raw = med(n["nft -f kvmnet's ruleset"])
        per = med(n.get("iptables-nft, one process per rule"))
        target("1000 forwards: kvmnet firewall apply <= 3x raw nft -f (all firewall work)", f"{allw / raw:.2f}x ({allw:.1f} vs {raw:.1f} ms)",
               "<= 3x", allw <= 3 * raw)
        target("1000 forwards: kvmnet firewall apply <= 3x raw nft -f (nft -f step only)", f"{load / raw:.2f}x ({load:.1f} vs {raw:.1f} ms)",
               "<= 3x", load <= 3 * raw)
        if per:
            target("1000 forwards: >= 30x faster than per-rule iptables processes (all firewall work)",
                   f"{per / allw:.1f}x ({per:.0f} vs {allw:.1f} ms)", ">= 30x", per >= 30 * allw)
            target("1000 forwards: >= 30x faster than per-rule iptables processes (nft -f step only)",
                   f"{per / load:.1f}x ({per:.0f} vs {load:.1f} ms)", ">= 30x", per >= 30 * load)
    else:
        target("1000 forwards targets", "not measured", "", None)
    if fs.get("status") == "ok" and "5000" in fs["sizes"]:
        n = fs["sizes"]["5000"]
        allw = med(n["kvmnet firewall (from the phase driver)"]["apply"]["all firewall work (render, nft list, load, verify)"])
        whole = med(n["kvmnet apply (whole process)"])
        target("5000 forwards well under a second: kvmnet firewall work", f"{allw:.0f} ms", "< 500 ms", allw < 500)
        target("5000 forwards well under a second: whole `kvmnet apply`", f"{whole:.0f} ms", "< 1000 ms", whole < 1000)
    else:
        target("5000 forwards", "not measured", "", None)

    nr = r.get("noop_reapply", {})
    if nr.get("status") == "ok":
        big = (nr["guests"], nr["forwards"]) == (100, 1000)
        w, wi = nr["work_after_imports_ms"], nr["work_after_imports_in_process_ms"]
        label = f"no-op re-apply ({nr['guests']} taps, {nr['forwards']} forwards)"
        target(f"{label}: work after imports <= 100 ms (CLI - import probe)", f"{w:.0f} ms", "<= 100 ms", (w <= 100) if big else None,
               "" if big else "--quick size")
        target(f"{label}: work after imports <= 100 ms (in-process)", f"{wi:.0f} ms", "<= 100 ms", (wi <= 100) if big else None,
               "" if big else "--quick size")
        zw = nr["zero_writes"]
        ev = zw["monitor_events_during_reapplies"]
        zero = zw["unchanged"] and ev["nft"]["events"] == 0 and ev["ip"]["events"] == 0
        target(f"{label}: zero writes", "none" if zero else f"changed: {zw['changed']}, events nft {ev['nft']['events']} ip {ev['ip']['events']}",
               "no change, no events", zero)

    ts = r.get("taps_scale", {})
    if ts.get("status") == "ok" and "1000" in ts["sizes"]:
        n = ts["sizes"]["1000"]
        nl = med(n["kvmnet netlink steps (from the phase driver)"]["apply"])
        whole = med(n["kvmnet apply (whole process)"])
        batch = med(n["ip -batch: create"])
        target("1000 taps up <= 2x ip -batch (kvmnet netlink steps)", f"{nl / batch:.2f}x ({nl:.0f} vs {batch:.0f} ms)", "<= 2x", nl <= 2 * batch)
        target("1000 taps up <= 2x ip -batch (whole kvmnet apply)", f"{whole / batch:.2f}x ({whole:.0f} vs {batch:.0f} ms)", "<= 2x", whole <= 2 * batch)
        dnl = med(n["kvmnet netlink steps (from the phase driver)"]["destroy"])
        dwhole = med(n["kvmnet destroy (whole process)"])
        target("1000 taps torn down in <= 1 s (kvmnet netlink steps)", f"{dnl:.0f} ms", "<= 1000 ms", dnl <= 1000)
        target("1000 taps torn down in <= 1 s (whole kvmnet destroy)", f"{dwhole:.0f} ms", "<= 1000 ms", dwhole <= 1000)
    else:
        target("1000 taps targets", "not measured", "", None)

    hk = r.get("hooks", {})
    if hk.get("status") == "ok":
        up, seed, bare = med(hk["kvmnet-ifup"]), med(hk["seed qemu-ifup-NAT (bridge exists)"]), med(hk["bare bash hook: ip link set master up"])
        target("ifup hook median <= the seed script's median", f"{up:.1f} vs {seed:.1f} ms", "<=", up <= seed)
        target("ifup hook median within 50 ms of the bare bash hook", f"+{up - bare:.1f} ms ({up:.1f} vs {bare:.1f})", "<= +50 ms", up - bare <= 50)

    cn = r.get("cold_nat", {})
    if cn.get("status") == "ok":
        seed = med(cn["seed qemu-ifup-NAT (bash)"])
        w, wi = cn["work_after_imports_ms"], cn["work_after_imports_in_process_ms"]
        target("cold NAT: kvmnet work after imports <= seed script wall (CLI - import probe)", f"{w:.0f} vs {seed:.0f} ms", "<=", w <= seed)
        target("cold NAT: kvmnet work after imports <= seed script wall (in-process)", f"{wi:.0f} vs {seed:.0f} ms", "<=", wi <= seed)
    return out


def markdown(results: dict, tabs: list[Table]) -> str:
    m = results["meta"]
    out = [f"### kvmnet benchmarks ({'--quick smoke run' if m['quick'] else 'bench/run'}, {m['date']})", "",
           f"{m['cpus']} CPUs, kernel {m['kernel']}, load average {m['loadavg_before']} before / {m['loadavg_after']} after; "
           f"kvmnet at {m['git']}. Medians of repeated runs, interleaved, all in one run of `bench/run`, "
           "each section in its own throwaway network namespace. Times in ms.", ""]
    for t in tabs:
        out += [t.markdown(), ""]
    tt = Table("Targets", ["target", "measured", "threshold", "result"])
    for x in results["targets"]:
        tt.add(x["target"], str(x["measured"]), x["threshold"], x["result"] + (f" ({x['detail']})" if x["detail"] else ""))
    out += [tt.markdown(), ""]
    return "\n".join(out)


def meta(quick: bool) -> dict:
    git = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "kvmnet"], capture_output=True, text=True).stdout
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "quick": quick, "host": platform.node(),
        "kernel": platform.release(), "cpus": os.cpu_count(), "python": sys.version.split()[0],
        "loadavg_before": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "git": git + (" + uncommitted changes in kvmnet/" if dirty.strip() else ""),
        "bytecode": "cached under PYTHONPYCACHEPREFIX (a temporary directory), PYTHONDONTWRITEBYTECODE unset",
        "tools": {t: (shutil.which(t) is not None) for t in ("nft", "iptables-nft", "iptables-legacy", "dnsmasq", "iperf3")},
    }


def bytecode_cache() -> str:
    """Timed Python processes read compiled bytecode from a cache of ours, as an installed kvmnet
    would. This environment sets PYTHONDONTWRITEBYTECODE=1 and kvmnet/ has no __pycache__, so
    otherwise every kvmnet process would compile kvmnet's sources first (the hooks section
    measures that case too). PYTHONPYCACHEPREFIX keeps the cache out of the repository."""
    prefix = tempfile.mkdtemp(prefix=f"kvb{os.getpid()}-pycache-")
    os.environ["PYTHONPYCACHEPREFIX"] = prefix
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([PY, "-m", "compileall", "-q", str(REPO / "kvmnet")], capture_output=True)
    # importing only (no network access): fills the cache for the libraries kvmnet loads
    subprocess.run([PY, "-c", "import kvmnet.cli, kvmnet.engine.transaction, kvmnet.hook, kvmnet.engine.observe, kvmnet.host.executor, "
                    "kvmnet.host.firewall, kvmnet.host.dnsmasq, kvmnet.host.coexist, kvmnet.host.netlink, pyroute2, iptc"],
                   capture_output=True)
    return prefix


def finish(results: dict) -> list[Table]:
    """Derived parts (targets, growth), printed tables."""
    results["targets"] = evaluate(results)
    fs = results["sections"].get("forwards_scale", {})
    g = growth(fs) if fs.get("status") == "ok" else None
    if g:
        results["forwards_growth"] = {k: v for k, v in g.items() if k != "notes"}
    tabs = tables(results)
    print()
    for t in tabs:
        print(t.text())
        print()
    tt = Table("Targets", ["target", "measured", "threshold", "result"])
    for x in results["targets"]:
        tt.add(x["target"], str(x["measured"]), x["threshold"], x["result"] + (f" ({x['detail']})" if x["detail"] else ""))
    print(tt.text())
    return tabs


def report_only(path: Path) -> int:
    results = json.loads(path.read_text())
    tabs = finish(results)
    path.write_text(json.dumps(results, indent=1) + "\n")
    path.with_suffix(".md").write_text(markdown(results, tabs))
    print(f"rewrote {path.with_suffix('.md')}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke mode: 1-2 repetitions, small N (CI; < 60 s)")
    ap.add_argument("--sections", default=",".join(ORDER), help=f"comma-separated subset of {','.join(ORDER)}")
    ap.add_argument("--out", default=None, help="results directory (default bench/results)")
    ap.add_argument("--no-profiles", action="store_true", help="skip the cProfile runs of the full mode")
    ap.add_argument("--report", metavar="JSON", help="measure nothing: print the tables and targets of an earlier "
                    "run's JSON again and rewrite its .md (and the derived fields of the JSON)")
    args = ap.parse_args()
    if args.report:
        return report_only(Path(args.report))
    if os.geteuid() != 0:
        print("bench/run: needs root (it creates network namespaces)", file=sys.stderr)
        return 2
    missing = [t for t in ("ip", "nft", "iptables-nft", "iptables-nft-restore", "iptables-legacy", "dnsmasq", "stdbuf")
               if not shutil.which(t)]
    if missing or not os.path.exists(PY):
        print(f"bench/run: missing {', '.join(missing) or PY} (scripts/setup installs them)", file=sys.stderr)
        return 2
    sections = [s for s in args.sections.split(",") if s]
    unknown = set(sections) - set(ORDER)
    if unknown:
        print(f"bench/run: unknown sections {sorted(unknown)}", file=sys.stderr)
        return 2
    out_dir = Path(args.out) if args.out else BENCH / "results"
    stem = "quick" if args.quick and not args.out else "latest"
    prof_dir = None if args.no_profiles else str(out_dir / "profiles")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    stale_cleanup()
    pycache = bytecode_cache()
    prm = params(args.quick, prof_dir)
    results = {"meta": meta(args.quick), "params": {k: prm[k] for k in sections}, "sections": {}}
    t0 = time.monotonic()
    try:
        for i, name in enumerate(sections):
            ts = time.monotonic()
            res = run_section(name, i, prm[name], timeout=120 if args.quick else 900)
            res.setdefault("section_wall_s", round(time.monotonic() - ts, 2))
            results["sections"][name] = res
            log(f"{name}: {res.get('status')} in {time.monotonic() - ts:.1f} s"
                + (f": {res.get('error') or res.get('reason')}" if res.get("status") != "ok" else ""))
    except (KeyboardInterrupt, Interrupted) as exc:
        log(f"interrupted ({exc}); namespaces removed; writing what was measured")
        results["meta"]["interrupted"] = True
    shutil.rmtree(pycache, ignore_errors=True)
    results["meta"]["loadavg_after"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    results["meta"]["wall_s"] = round(time.monotonic() - t0, 1)
    tabs = finish(results)
    print(f"\ntotal {results['meta']['wall_s']} s")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.json").write_text(json.dumps(results, indent=1) + "\n")
    (out_dir / f"{stem}.md").write_text(markdown(results, tabs))
    print(f"wrote {out_dir / (stem + '.json')} and {out_dir / (stem + '.md')}")
    failed = [n for n, s in results["sections"].items() if s.get("status") == "error"]
    return 1 if failed or results["meta"].get("interrupted") else 0


if __name__ == "__main__":
    sys.exit(main())
