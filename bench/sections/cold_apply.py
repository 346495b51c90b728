"""Section 1: cold apply of the seed's NAT network (topologies/nat.toml): `kvmnet apply` against
the seed's qemu-ifup-NAT and kvmnet's own plan as a raw ip/nft/dnsmasq script, kvmnet's time by
phase, what comes after "ready" (first DHCP lease, STP wait), and what start-up and imports cost
(kvmnet's, netaddr's)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.lib import startup
from bench.lib.common import KVMNET, LIB, NAT_TOML, PY, SEED_IFUP, CommandFailed, log, rotate, run, sh, stats, timed
from bench.lib.dhcp import first_offer
from bench.lib.hostutil import bridge_stp, kill_pidfile, link_exists, master_of, sysctl_read, sysctl_write
from bench.lib.phases import target_modules
from bench.lib.phaserun import (importtime, kv_env, phase_rows, phase_summary, phases_run, profile_kvmnet,
                                work_after_imports)
from bench.lib.rawscript import raw_script_from_plan
from bench.lib.report import Table, med, p95, ratio, target

NAME = "cold_nat"
TITLE = "1. Cold apply of the seed's NAT network (topologies/nat.toml)"
PROBE = str(LIB / "importprobe.py")

# result keys (the JSON's fields; the tables and the smoke test read them through these names)
APPLY_CLI = "kvmnet apply (CLI)"
DESTROY_CLI = "kvmnet destroy (CLI, between runs)"
SEED = "seed qemu-ifup-NAT (bash)"
RAW = "raw ip/nft/dnsmasq script"
PASS = "python -c pass"
IMPORT_PROBE = "import probe (start + kvmnet's imports)"
PH_APPLY, PH_DESTROY = "phases_apply", "phases_destroy"
WORK, WORK_CPU, WORK_IN = "work_after_imports_ms", "work_after_imports_cpu_ms", "work_after_imports_in_process_ms"
FIRST_LEASE, STP, IMPORTTIME, STARTUP = "first_lease", "bridge_stp", "apply_importtime", "startup_imports"
TIMED = (APPLY_CLI, SEED, RAW, PASS, IMPORT_PROBE)  # the rows of the main table, in order
# single imports whose start-up cost the README quotes (netaddr: MAC and address handling in config)
STARTUP_MODULES = ["netaddr", "kvmnet.config"]
APPLY_MODULES = ["kvmnet.cli", *target_modules(), "pyroute2"]


def params(quick: bool, profiles: str | None) -> dict:
    if quick:
        return {"reps": 1, "import_runs": 3}
    return {"reps": 7, "profiles": profiles, "dhcp_runs": 3, "import_runs": 11}


def peers(p: dict) -> int:
    return 1 if p.get("dhcp_runs") else 0  # the DHCP client's namespace


class Cold:
    """One namespace's worth of cold applies: kvmnet, the seed, the raw script, each undone."""

    def __init__(self, p: dict):
        self.tmp = Path(p["tmp"])
        self.st = self.tmp / "state"
        self.seed_run = self.tmp / "seed-run"
        self.seed_run.mkdir()
        self.orig_fwd = sysctl_read("net/ipv4/ip_forward")
        plan = json.loads(run([KVMNET, "plan", "--json", NAT_TOML], env=kv_env(self.tmp / "state-raw")).stdout)
        self.raw_text, self.raw = raw_script_from_plan(plan, self.tmp)
        self.raw_sh = self.tmp / "raw-nat.sh"
        self.raw_sh.write_text(self.raw_text)
        self.samples = {k: [] for k in (APPLY_CLI, DESTROY_CLI, SEED, RAW, PASS, IMPORT_PROBE)}
        self.ph = {"apply": [], "destroy": []}
        self.stp: dict = {}
        self.modules = self.tmp / "modules.txt"

    def kvmnet_ready(self) -> None:
        if not (link_exists("virbr0") and list((self.st / "nat").glob("dnsmasq-*.pid"))):
            raise CommandFailed("kvmnet apply returned without virbr0 or a dnsmasq pid file")

    def kvmnet_gone(self) -> None:
        if link_exists("virbr0"):
            raise CommandFailed("virbr0 still exists after kvmnet destroy")

    def seed_teardown(self) -> None:
        kill_pidfile(self.seed_run / "qemu-dhcp-virbr0.pid", str(self.seed_run))
        sh("ip link del virbr0 2>/dev/null; nft delete table ip nat 2>/dev/null; true")
        sysctl_write("net/ipv4/ip_forward", self.orig_fwd)
        for f in self.seed_run.glob("*"):
            f.unlink()

    def raw_teardown(self) -> None:
        kill_pidfile(Path(self.raw["pid_file"]), self.raw["conf_dir"])
        cmds = [f"ip link del {n} 2>/dev/null" for n in reversed(self.raw["links"])]
        sh("; ".join(cmds + [f"nft delete table inet {self.raw['table']} 2>/dev/null", "true"]))
        sysctl_write("net/ipv4/ip_forward", self.orig_fwd)

    def seed_apply(self) -> str:
        return run(["bash", SEED_IFUP, "kvbseed0"], env={"SEED_RUNDIR": str(self.seed_run)}).stderr

    def warm_up(self) -> tuple[dict, str]:
        """Not timed: caches, the modules an apply imports (for the probe), the seed's output."""
        _, warm = phases_run(["apply", NAT_TOML], self.st, self.tmp / "ph.json")
        self.modules.write_text("\n".join(warm["modules"]) + "\n")
        phases_run(["destroy", NAT_TOML], self.st, self.tmp / "ph.json")
        seed_err = self.seed_apply()
        self.seed_teardown()
        return warm, seed_err

    def one(self, v: str) -> None:
        s, env = self.samples, kv_env(self.st)
        if v == APPLY_CLI:
            s[APPLY_CLI].append(timed([KVMNET, "apply", NAT_TOML], env=env, expect="applied"))
            self.kvmnet_ready()
            self.stp["kvmnet"] = bridge_stp()
            s[DESTROY_CLI].append(timed([KVMNET, "destroy", NAT_TOML], env=env))
            self.kvmnet_gone()
        elif v == "phases":
            self.ph["apply"].append(phases_run(["apply", NAT_TOML], self.st, self.tmp / "ph.json")[1])
            self.kvmnet_ready()
            self.ph["destroy"].append(phases_run(["destroy", NAT_TOML], self.st, self.tmp / "ph.json")[1])
            self.kvmnet_gone()
        elif v == SEED:
            s[SEED].append(timed(["bash", SEED_IFUP, "kvbseed0"], env={"SEED_RUNDIR": str(self.seed_run)}))
            if not (self.seed_run / "qemu-dhcp-virbr0.pid").exists() or master_of("kvbseed0") != "virbr0":
                raise CommandFailed("the seed script returned without a dnsmasq pid file or the tap attached")
            self.stp["seed"] = bridge_stp()
            self.seed_teardown()
        elif v == RAW:
            s[RAW].append(timed(["bash", str(self.raw_sh)]))
            if not Path(self.raw["pid_file"]).exists():
                raise CommandFailed("raw script returned without a dnsmasq pid file")
            self.raw_teardown()
        elif v == PASS:
            s[PASS].append(timed([PY, "-c", "pass"]))
        elif v == IMPORT_PROBE:
            s[IMPORT_PROBE].append(timed([PY, PROBE, str(self.modules)]))


def measure(p: dict) -> dict:
    c = Cold(p)
    # the seed attaches the tap QEMU made for its guest: one, made here beforehand (not timed)
    run(["ip", "tuntap", "add", "dev", "kvbseed0", "mode", "tap"])
    warm, seed_err = c.warm_up()
    for r in range(p["reps"]):
        for v in rotate([APPLY_CLI, "phases", SEED, RAW, PASS, IMPORT_PROBE], r):
            c.one(v)
        log(f"cold_nat: rep {r + 1}/{p['reps']} done")
    if p.get("profiles"):
        profile_kvmnet(["apply", NAT_TOML], c.st, c.tmp, Path(p["profiles"]) / "cold-nat-apply.txt",
                       "kvmnet apply topologies/nat.toml (cold)")
        run([KVMNET, "destroy", NAT_TOML], env=kv_env(c.st))
    run(["ip", "link", "del", "kvbseed0"], check=False)
    dhcp = first_offer(p["peers"][0], c.tmp, p["dhcp_runs"]) if p.get("dhcp_runs") and p.get("peers") else None
    code = "import " + ", ".join(APPLY_MODULES)
    imports = importtime(run([PY, "-X", "importtime", "-c", code]).stderr)
    res = {k: stats(v) for k, v in c.samples.items()}
    res.update({
        FIRST_LEASE: dhcp or {"status": "skipped"},
        IMPORTTIME: dict(imports, note=f"python -X importtime -c '{code}' (one run)"),
        STP: {k: dict(v, new_port_forwards_after_s=2 * v["forward_delay_s"] if v.get("stp_state") else 0)
              for k, v in c.stp.items() if v},
        STARTUP: startup_imports(p["import_runs"]),
        PH_APPLY: phase_summary(c.ph["apply"]),
        PH_DESTROY: phase_summary(c.ph["destroy"]),
        "raw_script": c.raw_text,
        "seed_stderr": seed_err.strip(),
        "modules_imported": len(warm["modules"]),
    })
    res[WORK] = round(med(res[APPLY_CLI]) - med(res[IMPORT_PROBE]), 3)
    res[WORK_CPU] = round(res[APPLY_CLI]["cpu_median_ms"] - res[IMPORT_PROBE]["cpu_median_ms"], 3)
    res[WORK_IN] = work_after_imports(res[PH_APPLY])
    return res


def startup_imports(runs: int) -> dict:
    out = startup.import_costs(STARTUP_MODULES, runs)
    out["kvmnet.config imports netaddr"] = startup.imports_module("kvmnet.config", "netaddr")
    return out


# ----------------------------------------------------------------------------- reporting

def tables(s: dict) -> list[Table]:
    out = [main_table(s), phases_table(s)]
    if "note" in s.get(FIRST_LEASE, {}):
        out.append(lease_table(s))
    out.append(startup_table(s))
    return out


def main_table(s: dict) -> Table:
    seed = med(s[SEED])
    t = Table(TITLE, ["variant", "median ms", "p95 ms", "min ms", "cpu ms", "n", "vs seed"])
    for k in TIMED:
        t.add(k, med(s[k]), p95(s[k]), s[k]["min_ms"], s[k].get("cpu_median_ms"), str(s[k]["n"]), ratio(med(s[k]), seed))
    pw = s[PH_APPLY]["process_wall"]
    t.add("kvmnet apply via the phase driver (process)", med(pw), p95(pw), pw["min_ms"], pw.get("cpu_median_ms"),
          str(pw["n"]), ratio(med(pw), seed))
    t.add("kvmnet work after imports (apply - import probe)", s[WORK], "", "", s.get(WORK_CPU), "", ratio(s[WORK], seed))
    t.add("kvmnet work after imports (in-process, phase driver)", s[WORK_IN], "", "", "", "", ratio(s[WORK_IN], seed))
    t.notes += [
        "cpu ms: user+sys CPU time of the process and the children it waited for (median); "
        "less sensitive to other load on the machine than wall time",
        "every variant ends with dnsmasq's launcher returned (pid file written): 'dnsmasq ready'",
        "kvmnet does more than the seed: 2 taps (the seed attaches 1 tap QEMU made), an nft table with "
        "filter rules and a port forward (the seed: one MASQUERADE), IPv6 off on the bridge, route_localnet, "
        "a state record, and a verifying re-observe",
        "first DHCP lease: see 1c; the seed starts dnsmasq without --no-ping, so it pings an address "
        "before offering it; kvmnet's conf has no-ping",
        "raw = kvmnet's own plan (`kvmnet plan --json`) as ip/echo/nft/dnsmasq commands in one bash script",
    ]
    return t


def phases_table(s: dict) -> Table:
    t = Table("1b. kvmnet cold apply / destroy, where the time goes (medians, ms; phase driver)",
              ["phase", "apply", "destroy"])
    phase_rows(t, [s[PH_APPLY], s[PH_DESTROY]], med(s[PASS]))
    t.notes.append("phase driver: bench/lib/phases.py runs kvmnet.cli.main in-process with kvmnet's functions "
                   "wrapped (its TARGETS table); as the command, it starts the netlink worker first (kvmnet/cli_prestart.py): "
                   "pyroute2 loads in that child on the other core, and what the netlink phase still waits for it is "
                   "charged there; with KVMNET_NETLINK_WORKER=0 pyroute2 is imported in-process at the first change (section 8)")
    it = s.get(IMPORTTIME)
    if it:
        t.notes.append(f"-X importtime of kvmnet.cli + the wrapped modules + pyroute2: {it['total_ms']:.0f} ms; largest: "
                       + ", ".join(f"{k} {v:.0f}" for k, v in list(it["largest_any_depth_ms"].items())[:8]))
    imps = s[PH_APPLY].get("imports_top_ms", {})
    if imps:
        t.notes.append("largest imports (apply, ms, one run): " + ", ".join(f"{k} {v:.0f}" for k, v in list(imps.items())[:6]))
    return t


def lease_table(s: dict) -> Table:
    fl = s[FIRST_LEASE]
    t = Table("1c. After 'ready': a new guest's first DHCP lease, and its bridge port's STP wait",
              ["", "median ms", "p95 ms", "n"])
    for k, v in fl.items():
        if isinstance(v, dict) and "median_ms" in v:
            t.add(k, med(v), p95(v), str(v["n"]))
    for who, b in s.get(STP, {}).items():
        t.add(f"{who}'s virbr0: STP {'on' if b['stp_state'] else 'off'}, forward_delay {b['forward_delay_s']:g} s: "
              "a new port forwards after", b["new_port_forwards_after_s"] * 1000, "", "computed")
    t.notes.append(fl["note"])
    t.notes.append("the seed's `brctl setfd virbr0 0` (here `ip link set virbr0 type bridge forward_delay 0`) "
                   "is refused by the kernel with STP on (ERANGE), so its bridge keeps the 15 s default")
    return t


def startup_table(s: dict) -> Table:
    su = s[STARTUP]
    t = Table("1d. Start-up: what one import costs a new process (medians, ms)",
              ["process", "median ms", "p95 ms", "cpu ms", "n", "over python -c pass", "cpu over python -c pass"])
    base = su[startup.BASELINE]
    t.add(startup.BASELINE, med(base), p95(base), base.get("cpu_median_ms"), str(base["n"]), "", "")
    for m in STARTUP_MODULES:
        x = su[startup.label(m)]
        t.add(startup.label(m), med(x), p95(x), x.get("cpu_median_ms"), str(x["n"]), su["over_baseline_ms"][m],
              su["over_baseline_cpu_ms"][m])
    t.notes.append(f"interleaved, {su['runs']} runs each; kvmnet.config imports netaddr: "
                   f"{'yes' if su['kvmnet.config imports netaddr'] else 'no'}; the hooks' fast path must not (section 5)")
    return t


def targets(s: dict) -> list[dict]:
    seed = med(s[SEED])
    w, wi = s[WORK], s[WORK_IN]
    return [target("cold NAT: kvmnet work after imports <= seed script wall (CLI - import probe)",
                   f"{w:.0f} vs {seed:.0f} ms", "<=", w <= seed),
            target("cold NAT: kvmnet work after imports <= seed script wall (in-process)",
                   f"{wi:.0f} vs {seed:.0f} ms", "<=", wi <= seed)]


def sanity(s: dict) -> list[str]:
    """What must hold in any run, quick or full (the smoke test asserts none is returned)."""
    bad = [f"{k}: median {med(s[k])}" for k in TIMED if not (med(s[k]) or 0) > 0]
    phases = s[PH_APPLY]["phases_median_ms"]
    bad += [f"apply phase {ph!r} took no time: not instrumented?" for ph in
            ("imports", "config", "observe", "plan", "netlink", "firewall", "dnsmasq", "state record")
            if not phases.get(ph, 0) > 0]
    bad += [f"destroy phase {ph!r} took no time" for ph in ("netlink", "firewall")
            if not s[PH_DESTROY]["phases_median_ms"].get(ph, 0) > 0]
    su = s[STARTUP]
    bad += [f"{startup.label(m)}: median {med(su[startup.label(m)])}" for m in STARTUP_MODULES
            if not med(su[startup.label(m)]) > med(su[startup.BASELINE]) * 0.5]
    if not s[WORK_IN] > 0:
        bad.append(f"in-process work after imports {s[WORK_IN]}")
    return bad
