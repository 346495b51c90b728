"""The benchmark sections. bench/lib/main.py runs each one inside a network namespace it created
for it (and removes afterwards, whatever happens):

    ip netns exec NS python bench/lib/worker.py SECTION PARAMS.json OUT.json

Everything here acts on that namespace only: links, addresses, sysctls, nftables and iptables
rules, dnsmasq. Timed commands are started directly from this process (no `ip netns exec`
per command), so what is measured is the command itself plus fork/exec.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (IFDOWN, IFUP, KVMNET, LIB, PY, REPO, SEED_IFUP, CommandFailed, log, percentile,  # noqa: E402
                    read, rotate, run, sh, stats, timed)

PHASES = str(LIB / "phases.py")
PROBE = str(LIB / "importprobe.py")
IPTC = str(LIB / "iptc_load.py")
NAT_TOML = str(REPO / "topologies" / "nat.toml")
HOST_ADDR = "203.0.113.1"  # the "host address" of the seed-style DNAT rules (-d); TEST-NET-3


# ------------------------------------------------------------------------------------ helpers

def kv_env(state: Path) -> dict:
    return {"KVMNET_STATE_DIR": str(state)}


def phases_run(args: list[str], state: Path, out: Path, expect_rc: int = 0) -> tuple[float, dict]:
    """kvmnet ARGS through the phase driver: (wall seconds, its JSON)."""
    out.unlink(missing_ok=True)
    wall = timed([PY, PHASES, str(out), "--", *args], env=kv_env(state), check=False)
    if not out.exists():  # the driver itself failed (kvmnet import error...): say how
        res = run([PY, PHASES, str(out), "--", *args], env=kv_env(state), check=False)
        raise CommandFailed(f"phase driver for kvmnet {' '.join(args)} wrote no result: {res.stderr[-1500:]}")
    data = json.loads(out.read_text())
    if data["rc"] != expect_rc:
        raise CommandFailed(f"kvmnet {' '.join(args)} (phase driver): rc {data['rc']}: {data['output'][-800:]}")
    data["wall_s"] = wall
    return wall, data


def phase_summary(runs: list[dict]) -> dict:
    """Median per phase (ms) over the driver runs, plus everything needed to read them."""
    names = sorted({k for r in runs for k in r["phases_s"]})
    med = {k: round(percentile([r["phases_s"].get(k, 0.0) * 1000 for r in runs], 0.5), 3) for k in names}
    buckets = sorted({k for r in runs for k in r["buckets_s"]})
    bmed = {k: round(percentile([r["buckets_s"].get(k, 0.0) * 1000 for r in runs], 0.5), 3) for k in buckets}
    last = runs[-1]
    return {
        "n": len(runs),
        "phases_median_ms": med,
        "buckets_median_ms": bmed,
        "in_process_total": stats([r["total_s"] for r in runs]),
        "process_wall": stats([r["wall_s"] for r in runs]),
        "ops": last["ops"],
        "imports_top_ms": {k: round(v * 1000, 3) for k, v in last["imports_s"].items()},
        "not_instrumented": last["not_instrumented"],
    }


def bucket_sum(run_: dict, pred) -> float:
    return sum(v for k, v in run_["buckets_s"].items() if pred(k))


def is_fw_bucket(k: str) -> bool:
    return k.endswith("exec: firewall") or "render nft" in k or "firewall (nft list)" in k or "choose backend" in k


def write_profile(prof: Path, dest: Path, title: str, limit: int = 30) -> None:
    import io
    import pstats
    buf = io.StringIO()
    st = pstats.Stats(str(prof), stream=buf)
    buf.write(f"# {title}\n# cProfile of one run (profiling roughly doubles the time of Python-heavy code)\n")
    buf.write("\n## by cumulative time\n")
    st.sort_stats("cumulative").print_stats(limit)
    buf.write("\n## by own time (tottime)\n")
    st.sort_stats("tottime").print_stats(limit)
    text = "\n".join(line.rstrip() for line in buf.getvalue().splitlines()
                     if line.strip() and not line.startswith(("   Ordered by", "   List reduced")))
    text = text.replace(str(REPO) + "/", "").replace(str(Path(PY).parent.parent) + "/lib/python3.11/site-packages/", "")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text + "\n")


def profile_kvmnet(args: list[str], state: Path, tmp: Path, dest: Path, title: str) -> None:
    prof = tmp / "run.prof"
    run([PY, "-m", "cProfile", "-o", str(prof), "-m", "kvmnet.cli", *args], env=kv_env(state))
    write_profile(prof, dest, title)


def proc_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def kill_pidfile(path: Path, marker: str) -> None:
    """Stop the dnsmasq whose pid is in `path`, only if its command line mentions `marker` (our
    temporary directory), and wait until it is gone."""
    try:
        pid = int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        cmdline = ""
    if marker in cmdline:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 3
        while proc_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.002)
    try:
        Path(path).unlink()
    except FileNotFoundError:
        pass


def link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def master_of(name: str) -> str | None:
    try:
        return os.path.basename(os.readlink(f"/sys/class/net/{name}/master"))
    except OSError:
        return None


def sysctl_read(path: str) -> str:
    return Path(f"/proc/sys/{path}").read_text().strip()


def sysctl_write(path: str, value: str) -> None:
    Path(f"/proc/sys/{path}").write_text(value)


def link_count() -> int:
    return len(os.listdir("/sys/class/net"))


# --------------------------------------------------------------------- topology generators

def importtime(stderr: str) -> dict:
    """`python -X importtime` output -> total, top-level modules, and the largest at any depth."""
    rows = []  # (name with its nesting indent, self µs, cumulative µs)
    for line in stderr.splitlines():
        parts = line[len("import time:"):].split("|") if line.startswith("import time:") else []
        if len(parts) == 3 and parts[0].strip().isdigit():
            rows.append((parts[2][1:], int(parts[0]), int(parts[1])))
    top_level = [(m, c) for m, _, c in rows if not m.startswith(" ")]
    return {
        "total_ms": round(sum(c for _, c in top_level) / 1000, 3),
        "top_level_ms": {m: round(c / 1000, 3) for m, c in sorted(top_level, key=lambda x: -x[1])[:10]},
        "largest_any_depth_ms": {m.strip(): round(c / 1000, 3) for m, _, c in sorted(rows, key=lambda x: -x[2])[:15]},
        "kvmnet_modules_cumulative_ms": {m.strip(): round(c / 1000, 3) for m, _, c in rows if m.strip().startswith("kvmnet")},
    }


def nat_big_toml(name: str, guests: int, forwards: int) -> str:
    """A NAT network on a /20 with `guests` guests (static leases, one tap each) and `forwards`
    TCP port forwards to them."""
    out = [f'name = "{name}"', "", "[networks.big]", 'mode = "nat"', 'bridge = "kvbbig0"',
           'subnet = "10.88.0.0/20"', 'gateway = "10.88.0.1"', 'domain = "bench.lan"', "",
           "[networks.big.dhcp]", 'start = "10.88.8.1"', 'end = "10.88.15.254"', ""]
    for k in range(forwards):
        out += ["[[networks.big.forwards]]", 'proto = "tcp"', f"host_port = {20000 + k}",
                f'guest = "g{k % guests:03d}"', f"guest_port = {80 + k // guests}", ""]
    for i in range(guests):
        out += [f"[guests.g{i:03d}]", f"[[guests.g{i:03d}.nics]]", 'network = "big"',
                f'ip = "10.88.{1 + i // 200}.{10 + i % 200}"', ""]
    return "\n".join(out)


def fw_guest_ip(k: int) -> str:
    return f"10.99.{1 + k // 200}.{10 + k % 200}"


def fw_toml(name: str, n: int) -> str:
    """A NAT network (no dnsmasq, no guests) with n TCP port forwards to addresses in its /16."""
    out = [f'name = "{name}"', "", "[networks.fw]", 'mode = "nat"', 'bridge = "kvbfw0"',
           'subnet = "10.99.0.0/16"', 'gateway = "10.99.0.1"', ""]
    for k in range(n):
        out += ["[[networks.fw.forwards]]", 'proto = "tcp"', f"host_port = {10000 + k}",
                f'guest = "{fw_guest_ip(k)}"', "guest_port = 8080", ""]
    return "\n".join(out)


def taps_toml(name: str, n: int) -> str:
    """An isolated bridge (no subnet: no address, no dnsmasq) with n guests of one NIC each."""
    out = [f'name = "{name}"', "", "[networks.iso]", 'mode = "isolated"', 'bridge = "kvbtap0"', ""]
    for i in range(n):
        out += [f"[guests.g{i:04d}]", f"[[guests.g{i:04d}.nics]]", 'network = "iso"', ""]
    return "\n".join(out)


# --------------------------------------------------------------------------- 1. cold NAT

def raw_script_from_plan(plan: dict, tmp: Path) -> tuple[str, dict]:
    """The steps of kvmnet's own plan as the shell commands a person would type (plan's
    `command` for each step; sysctls as `echo > /proc/sys`, the ruleset and the dnsmasq conf
    written to files beforehand, as an admin would have them)."""
    lines = ["#!/bin/bash", "# kvmnet's plan for topologies/nat.toml as raw ip/nft/dnsmasq commands", "set -e"]
    info = {"links": [], "pid_file": None, "table": None, "conf_dir": None}
    for s in plan["steps"]:
        op, a = s["do"]["op"], s["do"]["args"]
        if op == "sysctl.set":
            lines.append(f"echo {a['value']} > /proc/sys/{a['path']}")
        elif op == "firewall.apply":
            if a["backend"] != "nftables":
                raise CommandFailed(f"raw script: firewall backend {a['backend']} not supported")
            f = tmp / "raw-ruleset.nft"
            f.write_text(a["ruleset"])
            info["table"] = a["table"]
            lines.append(f"nft -f {f}")
        elif op == "dnsmasq.start":
            conf = Path(a["conf"])
            conf.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            conf.write_text(a["conf_text"])
            Path(a["leases"]).touch()
            info["pid_file"], info["conf_dir"] = a["pid_file"], str(conf.parent)
            lines.append(f"dnsmasq --conf-file={conf}")
        else:
            if op in ("bridge.add", "tap.add"):
                info["links"].append(a["name"])
            lines.append(s["command"])
    return "\n".join(lines) + "\n", info


def first_offer(client_ns: str, tmp: Path, runs: int) -> dict:
    """Time from a DHCP client's start to its lease (DISCOVER, OFFER, REQUEST, ACK) from dnsmasq
    started with the seed's flags, without and with --no-ping (kvmnet's conf has no-ping). The
    client is busybox udhcpc in another namespace (`client_ns`) on a veth port of a bridge with
    STP off, so the port's STP listening/learning delay is not part of it (see stp_* for that)."""
    rundir = tmp / "dhcp"
    rundir.mkdir()
    run(["ip", "link", "add", "kvbdh0", "type", "bridge"])
    run(["ip", "addr", "add", "10.203.0.1/24", "dev", "kvbdh0"])
    run(["ip", "link", "set", "kvbdh0", "up"])
    run(["ip", "link", "add", "kvbdhA", "type", "veth", "peer", "name", "kvbdhB", "netns", client_ns])
    run(["ip", "link", "set", "kvbdhA", "master", "kvbdh0", "up"])
    in_client = ["ip", "netns", "exec", client_ns]
    run([*in_client, "ip", "link", "set", "kvbdhB", "up"])
    seed_flags = ["dnsmasq", "--strict-order", "--except-interface=lo", "--interface=kvbdh0",
                  "--listen-address=10.203.0.1", "--bind-interfaces", "--dhcp-range=10.203.0.2,10.203.0.254",
                  "--conf-file=", f"--pid-file={rundir}/d.pid", f"--dhcp-leasefile={rundir}/d.leases",
                  "--dhcp-no-override"]
    samples = {"seed's dnsmasq flags": [], "the same + --no-ping (as kvmnet's conf)": []}
    exec_overhead = []
    try:
        for i in range(runs):
            for j, label in enumerate(rotate(list(samples), i)):
                extra = ["--no-ping"] if "no-ping" in label else []
                mac = f"02:00:00:00:{i:02x}:{j:02x}"  # a client dnsmasq has never seen
                run([*in_client, "ip", "link", "set", "kvbdhB", "address", mac])
                run(seed_flags + extra)
                samples[label].append(timed([*in_client, "busybox", "udhcpc", "-i", "kvbdhB", "-f", "-q", "-n",
                                             "-t", "5", "-s", "/bin/true"], timeout=60, expect="obtained"))
                kill_pidfile(rundir / "d.pid", str(rundir))
                (rundir / "d.leases").unlink(missing_ok=True)
            exec_overhead.append(timed([*in_client, "true"]))
    finally:
        kill_pidfile(rundir / "d.pid", str(rundir))
        run(["ip", "link", "del", "kvbdh0"], check=False)
        run(["ip", "link", "del", "kvbdhA"], check=False)
    out = {k: stats(v) for k, v in samples.items()}
    out["ip netns exec overhead (included above)"] = stats(exec_overhead)
    out["note"] = ("busybox udhcpc start -> lease, run through `ip netns exec` in the client namespace; "
                   "bridge STP off")
    return out


def bridge_stp() -> dict:
    try:
        return {"stp_state": int(read("/sys/class/net/virbr0/bridge/stp_state")),
                "forward_delay_s": int(read("/sys/class/net/virbr0/bridge/forward_delay")) / 100}
    except (TypeError, ValueError):
        return {}


def cold_nat(p: dict) -> dict:
    reps, tmp = p["reps"], Path(p["tmp"])
    st = tmp / "state"
    seed_run = tmp / "seed-run"
    seed_run.mkdir()
    orig_fwd = sysctl_read("net/ipv4/ip_forward")

    plan = json.loads(run([KVMNET, "plan", "--json", NAT_TOML], env=kv_env(tmp / "state-raw")).stdout)
    raw_text, raw = raw_script_from_plan(plan, tmp)
    raw_sh = tmp / "raw-nat.sh"
    raw_sh.write_text(raw_text)

    def kvmnet_gone():
        if link_exists("virbr0"):
            raise CommandFailed("virbr0 still exists after kvmnet destroy")

    def kvmnet_ready():
        pids = list((st / "nat").glob("dnsmasq-*.pid"))
        if not (link_exists("virbr0") and pids):
            raise CommandFailed("kvmnet apply returned without virbr0 or a dnsmasq pid file")

    def seed_teardown():
        kill_pidfile(seed_run / "qemu-dhcp-virbr0.pid", str(seed_run))
        sh("ip link del virbr0 2>/dev/null; nft delete table ip nat 2>/dev/null; true")
        sysctl_write("net/ipv4/ip_forward", orig_fwd)
        for f in seed_run.glob("*"):
            f.unlink()

    def raw_teardown():
        kill_pidfile(Path(raw["pid_file"]), raw["conf_dir"])
        cmds = [f"ip link del {n} 2>/dev/null" for n in reversed(raw["links"])]
        sh("; ".join(cmds + [f"nft delete table inet {raw['table']} 2>/dev/null", "true"]))
        sysctl_write("net/ipv4/ip_forward", orig_fwd)

    # the seed attaches the tap QEMU made for its guest: one, made here beforehand (not timed)
    run(["ip", "tuntap", "add", "dev", "kvbseed0", "mode", "tap"])

    # warm-up (not timed): caches, and the list of modules an apply imports (for the probe)
    _, warm = phases_run(["apply", NAT_TOML], st, tmp / "ph.json")
    modules = tmp / "modules.txt"
    modules.write_text("\n".join(warm["modules"]) + "\n")
    phases_run(["destroy", NAT_TOML], st, tmp / "ph.json")
    seed_err = run(["bash", SEED_IFUP, "kvbseed0"], env={"SEED_RUNDIR": str(seed_run)}).stderr
    seed_teardown()

    samples = {k: [] for k in ("kvmnet", "seed", "raw", "pass", "probe")}
    ph_apply, ph_destroy = [], []
    destroy_cli = []
    variants = ["kvmnet", "phases", "seed", "raw", "pass", "probe"]
    stp: dict = {}
    for r in range(reps):
        for v in rotate(variants, r):
            if v == "kvmnet":
                samples["kvmnet"].append(timed([KVMNET, "apply", NAT_TOML], env=kv_env(st), expect="applied"))
                kvmnet_ready()
                stp["kvmnet"] = bridge_stp()
                destroy_cli.append(timed([KVMNET, "destroy", NAT_TOML], env=kv_env(st)))
                kvmnet_gone()
            elif v == "phases":
                ph_apply.append(phases_run(["apply", NAT_TOML], st, tmp / "ph.json")[1])
                kvmnet_ready()
                ph_destroy.append(phases_run(["destroy", NAT_TOML], st, tmp / "ph.json")[1])
                kvmnet_gone()
            elif v == "seed":
                samples["seed"].append(timed(["bash", SEED_IFUP, "kvbseed0"], env={"SEED_RUNDIR": str(seed_run)}))
                if not (seed_run / "qemu-dhcp-virbr0.pid").exists() or master_of("kvbseed0") != "virbr0":
                    raise CommandFailed("the seed script returned without a dnsmasq pid file or the tap attached")
                stp["seed"] = bridge_stp()
                seed_teardown()
            elif v == "raw":
                samples["raw"].append(timed(["bash", str(raw_sh)]))
                if not Path(raw["pid_file"]).exists():
                    raise CommandFailed("raw script returned without a dnsmasq pid file")
                raw_teardown()
            elif v == "pass":
                samples["pass"].append(timed([PY, "-c", "pass"]))
            elif v == "probe":
                samples["probe"].append(timed([PY, PROBE, str(modules)]))
        log(f"cold_nat: rep {r + 1}/{reps} done")
    if p.get("profiles"):
        profile_kvmnet(["apply", NAT_TOML], st, tmp, Path(p["profiles"]) / "cold-nat-apply.txt",
                       "kvmnet apply topologies/nat.toml (cold)")
        run([KVMNET, "destroy", NAT_TOML], env=kv_env(st))
    run(["ip", "link", "del", "kvbseed0"], check=False)
    dhcp = first_offer(p["peers"][0], tmp, p["dhcp_runs"]) if p.get("dhcp_runs") and p.get("peers") else None
    imports = importtime(run([PY, "-X", "importtime", "-c", "import kvmnet.cli, kvmnet.engine.transaction, pyroute2"]).stderr)

    res = {
        "first_lease": dhcp or {"status": "skipped"},
        "apply_importtime": dict(imports, note="python -X importtime -c 'import kvmnet.cli, kvmnet.engine.transaction, pyroute2' (one run)"),
        "bridge_stp": {k: dict(v, new_port_forwards_after_s=2 * v["forward_delay_s"] if v.get("stp_state") else 0)
                       for k, v in stp.items() if v},
        "kvmnet apply (CLI)": stats(samples["kvmnet"]),
        "kvmnet destroy (CLI, between runs)": stats(destroy_cli),
        "seed qemu-ifup-NAT (bash)": stats(samples["seed"]),
        "raw ip/nft/dnsmasq script": stats(samples["raw"]),
        "python -c pass": stats(samples["pass"]),
        "import probe (start + kvmnet's imports)": stats(samples["probe"]),
        "phases_apply": phase_summary(ph_apply),
        "phases_destroy": phase_summary(ph_destroy),
        "raw_script": raw_text,
        "seed_stderr": seed_err.strip(),
        "modules_imported": len(warm["modules"]),
    }
    med = lambda k: res[k]["median_ms"]  # noqa: E731
    res["work_after_imports_ms"] = round(med("kvmnet apply (CLI)") - med("import probe (start + kvmnet's imports)"), 3)
    res["work_after_imports_cpu_ms"] = round(res["kvmnet apply (CLI)"]["cpu_median_ms"]
                                             - res["import probe (start + kvmnet's imports)"]["cpu_median_ms"], 3)
    pa = res["phases_apply"]["phases_median_ms"]
    res["work_after_imports_in_process_ms"] = round(
        res["phases_apply"]["in_process_total"]["median_ms"] - pa.get("imports", 0.0), 3)
    return res


# -------------------------------------------------------------------- 2. no-op re-apply

def _steady(value):
    """linkinfo without the bridge's running timers (hello_timer, gc_timer...: they tick by
    themselves, nothing writes them)."""
    if isinstance(value, dict):
        return {k: _steady(v) for k, v in value.items() if not k.endswith("_timer")}
    if isinstance(value, list):
        return [_steady(v) for v in value]
    return value


def snapshot(files: list[Path]) -> dict:
    """Everything a write would change: per link (by name) its ifindex, flags, mtu, master, mac,
    group, operstate and linkinfo; addresses; routes; the nft ruleset with rule handles; files."""
    out = {}
    for l in json.loads(run(["ip", "-d", "-j", "link", "show"]).stdout):
        out[f"link {l['ifname']}"] = json.dumps({
            "ifindex": l["ifindex"], "flags": l.get("flags"), "mtu": l.get("mtu"), "master": l.get("master"),
            "address": l.get("address"), "group": l.get("group"), "operstate": l.get("operstate"),
            "linkinfo": _steady(l.get("linkinfo"))}, sort_keys=True)
    addrs = json.loads(run(["ip", "-j", "addr", "show"]).stdout)
    out["addresses"] = json.dumps(sorted((a["ifname"], i.get("local"), i.get("prefixlen"))
                                         for a in addrs for i in a.get("addr_info", [])))
    out["routes"] = run(["ip", "route", "show", "table", "all"]).stdout
    out["nft ruleset (with handles)"] = run(["nft", "-a", "list", "ruleset"]).stdout
    for f in files:
        try:
            st = f.stat()
            out[f"file {f.name}"] = (st.st_mtime_ns, st.st_ino, hashlib.sha256(f.read_bytes()).hexdigest())
        except OSError:
            out[f"file {f.name}"] = None
    return out


class Monitors:
    """`nft monitor` and `ip monitor link address route` writing to files while they run."""

    def __init__(self, tmp: Path, tag: str):
        self.files = {"nft": tmp / f"nft-monitor-{tag}.txt", "ip": tmp / f"ip-monitor-{tag}.txt"}
        self.procs = []
        for kind, argv in (("nft", ["stdbuf", "-oL", "nft", "monitor"]),
                           ("ip", ["stdbuf", "-oL", "ip", "-o", "-ts", "monitor", "link", "address", "route"])):
            f = open(self.files[kind], "w")
            self.procs.append((subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT), f))
        time.sleep(0.3)

    def stop(self) -> dict:
        time.sleep(0.3)
        for proc, f in self.procs:
            proc.terminate()
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            f.close()
        out = {}
        for kind, path in self.files.items():
            lines = [l for l in path.read_text().splitlines() if l.strip()]
            out[kind] = {"events": len(lines), "first": lines[:5]}
        return out


def noop_reapply(p: dict) -> dict:
    reps, tmp = p["reps"], Path(p["tmp"])
    st = tmp / "state"
    topo = tmp / "big.toml"
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
    # let the kernel finish what it does by itself after links are made (linkwatch, qdisc
    # attach, bridge port notifications come up to a second or more later): the baseline is a
    # host whose snapshots agree over 2 s (three snapshots 1 s apart)
    before, settle_t0, stable = snapshot(watched), time.monotonic(), 0
    while stable < 2 and time.monotonic() - settle_t0 < 20:
        time.sleep(1)
        again = snapshot(watched)
        stable = stable + 1 if again == before else 0
        before = again
    settled_after = round(time.monotonic() - settle_t0, 1)

    mon = Monitors(tmp, "reapply")
    samples = {"cli": [], "probe": [], "pass": []}
    ph = []
    try:
        for r in range(reps):
            for v in rotate(["cli", "phases", "probe", "pass"], r):
                if v == "cli":
                    samples["cli"].append(timed([KVMNET, *args], env=kv_env(st), expect="already in sync"))
                elif v == "phases":
                    ph.append(phases_run(args, st, tmp / "ph.json")[1])
                    if ph[-1]["ops"]:
                        raise CommandFailed(f"re-apply ran steps: {ph[-1]['ops']}")
                elif v == "probe":
                    samples["probe"].append(timed([PY, PROBE, str(modules)]))
                else:
                    samples["pass"].append(timed([PY, "-c", "pass"]))
            log(f"noop_reapply: rep {r + 1}/{reps} done")
    finally:
        events = mon.stop()
    after = snapshot(watched)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))

    # positive control: the same monitors do see a change (an nft table and a link, added and removed)
    ctl = Monitors(tmp, "control")
    sh("nft add table inet kvb_canary && nft delete table inet kvb_canary && "
       "ip link add kvbcanary type bridge && ip link del kvbcanary")
    control = ctl.stop()

    if p.get("profiles"):
        profile_kvmnet(args, st, tmp, Path(p["profiles"]) / "noop-reapply.txt",
                       f"kvmnet apply (no-op re-apply: {p['guests']} taps, {p['forwards']} forwards)")
    t_destroy = timed([KVMNET, "destroy", str(topo)], env=kv_env(st), timeout=600)

    res = {
        "guests": p["guests"], "forwards": p["forwards"],
        "first apply (not a benchmark, n=1)": stats([t_first]),
        "destroy at the end (n=1)": stats([t_destroy]),
        "kvmnet re-apply (CLI)": stats(samples["cli"]),
        "import probe (start + kvmnet's imports)": stats(samples["probe"]),
        "python -c pass": stats(samples["pass"]),
        "phases": phase_summary(ph),
        "zero_writes": {
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
        },
    }
    res["work_after_imports_ms"] = round(res["kvmnet re-apply (CLI)"]["median_ms"]
                                         - res["import probe (start + kvmnet's imports)"]["median_ms"], 3)
    res["work_after_imports_cpu_ms"] = round(res["kvmnet re-apply (CLI)"]["cpu_median_ms"]
                                             - res["import probe (start + kvmnet's imports)"]["cpu_median_ms"], 3)
    res["work_after_imports_in_process_ms"] = round(
        res["phases"]["in_process_total"]["median_ms"] - res["phases"]["phases_median_ms"].get("imports", 0.0), 3)
    return res


# -------------------------------------------------------------------- 3. forwards scale

def forwards_scale(p: dict) -> dict:
    from kvmnet import config, naming  # the worker may import kvmnet: nothing here is timed
    from kvmnet.render import nft

    tmp = Path(p["tmp"])
    st = tmp / "state"
    out: dict = {"sizes": {}, "iptables_variant": "iptables-nft (iptables v1.8 nf_tables backend: this machine's `iptables`)"}
    for n in p["sizes"]:
        reps = p["reps"]
        name = f"fw{n}"
        topo = tmp / f"{name}.toml"
        topo.write_text(fw_toml(name, n))
        table = naming.nft_table(name)
        ruleset = tmp / f"{name}.nft"
        ruleset.write_text(nft.render(config.load(str(topo)), table).text)
        subnet = "10.99.0.0/16"
        dnat = [(10000 + k, fw_guest_ip(k)) for k in range(n)]
        masq = f"-A POSTROUTING -s {subnet} ! -d {subnet} -j MASQUERADE"
        per_rule = tmp / f"{name}-per-rule.sh"
        per_rule.write_text("#!/bin/bash\nset -e\n" + f"iptables-nft -t nat {masq}\n" + "".join(
            f"iptables-nft -t nat -A PREROUTING -p tcp -d {HOST_ADDR} --dport {port} -j DNAT --to-destination {ip}:8080\n"
            for port, ip in dnat))
        restore = tmp / f"{name}.restore"
        restore.write_text("*nat\n" + masq + "\n" + "".join(
            f"-A PREROUTING -p tcp -d {HOST_ADDR} --dport {port} -j DNAT --to-destination {ip}:8080\n"
            for port, ip in dnat) + "COMMIT\n")
        tsv = tmp / f"{name}.tsv"
        tsv.write_text(f"masquerade {subnet}\n" + "".join(f"tcp {HOST_ADDR} {port} {ip} 8080\n" for port, ip in dnat))

        def reset_nat():
            sh("nft delete table ip nat 2>/dev/null; iptables-legacy -t nat -F 2>/dev/null; true")

        def check_dnat(cmd: str, want: int):
            got = sum(1 for l in run(cmd.split()).stdout.splitlines() if "DNAT" in l)
            if got != want:
                raise CommandFailed(f"{cmd}: {got} DNAT rules, expected {want}")

        per_rule_reps = reps if n <= p["per_rule_full_max"] else p["per_rule_big_reps"]
        s = {k: [] for k in ("per_rule", "restore", "iptc", "nft_apply", "nft_reapply", "nft_delete")}
        iptc_split = []
        ph = {"apply": [], "reapply": [], "destroy": []}
        # kvmnet runs through the phase driver only (the same kvmnet.cli.main code path, in one
        # process per command): its process wall is the command's wall, and its buckets isolate
        # the firewall. Sections 1 and 2 run both and show the driver's overhead is noise.
        variants = ["phases", "per_rule", "restore", "iptc", "nft"]
        for r in range(reps):
            for v in rotate(variants, r):
                if v == "phases":
                    for what in ("apply", "reapply", "destroy"):
                        args = ["destroy" if what == "destroy" else "apply", str(topo)]
                        ph[what].append(phases_run(args, st, tmp / "ph.json")[1])
                    if ph["reapply"][-1]["ops"]:
                        raise CommandFailed(f"re-apply ran steps: {ph['reapply'][-1]['ops']}")
                elif v == "per_rule" and r < per_rule_reps:
                    s["per_rule"].append(timed(["bash", str(per_rule)], timeout=900))
                    if r == 0:
                        check_dnat("iptables-nft -t nat -S PREROUTING", n)
                    reset_nat()
                elif v == "restore":
                    s["restore"].append(timed(["iptables-nft-restore", "--noflush", str(restore)]))
                    if r == 0:
                        check_dnat("iptables-nft -t nat -S PREROUTING", n)
                    reset_nat()
                elif v == "iptc":
                    s["iptc"].append(timed([PY, IPTC, str(tsv)]))
                    if r == 0:
                        check_dnat("iptables-legacy -t nat -S PREROUTING", n)
                    reset_nat()
                elif v == "nft":
                    s["nft_apply"].append(timed(["nft", "-f", str(ruleset)]))
                    s["nft_reapply"].append(timed(["nft", "-f", str(ruleset)]))
                    s["nft_delete"].append(timed(["nft", "delete", "table", "inet", table]))
            log(f"forwards_scale: N={n} rep {r + 1}/{reps} done")
        # python-iptables' own split (import / build / commit), one extra run
        iptc_split = json.loads(run([PY, IPTC, str(tsv)]).stdout)
        reset_nat()
        if p.get("profiles") and n == max(p["sizes"]):
            profile_kvmnet(["apply", str(topo)], st, tmp, Path(p["profiles"]) / f"forwards-{n}-apply.txt",
                           f"kvmnet apply ({n} port forwards, cold)")
            run([KVMNET, "destroy", str(topo)], env=kv_env(st))
        size = {
            "kvmnet apply (whole process)": stats([x["wall_s"] for x in ph["apply"]]),
            "kvmnet re-apply (whole process)": stats([x["wall_s"] for x in ph["reapply"]]),
            "kvmnet destroy (whole process)": stats([x["wall_s"] for x in ph["destroy"]]),
            "iptables-restore --noflush (nft backend), one process": stats(s["restore"]),
            "python-iptables (legacy), one commit, whole process": stats(s["iptc"]),
            "python-iptables split (one run)": {k: round(v * 1000, 3) if k.endswith("_s") else v for k, v in iptc_split.items()},
            "nft -f kvmnet's ruleset": stats(s["nft_apply"]),
            "nft -f kvmnet's ruleset again (replace)": stats(s["nft_reapply"]),
            "nft delete table": stats(s["nft_delete"]),
            "phases": {k: phase_summary(v) for k, v in ph.items()},
        }
        if s["per_rule"]:
            note = None if len(s["per_rule"]) >= 5 else f"only {len(s['per_rule'])} run(s)"
            size["iptables-nft, one process per rule"] = stats(s["per_rule"], note)
        fw = {}
        for what in ("apply", "reapply", "destroy"):
            runs = ph[what]
            fw[what] = {
                "load step (exec: firewall)": stats([bucket_sum(x, lambda k: k.endswith("exec: firewall")) for x in runs]),
                "all firewall work (render, nft list, load, verify)": stats([bucket_sum(x, is_fw_bucket) for x in runs]),
            }
        size["kvmnet firewall (from the phase driver)"] = fw
        out["sizes"][str(n)] = size
    # per-rule iptables at sizes too slow to run: extrapolated (said so)
    sizes = [str(n) for n in p["sizes"]]
    measured = [k for k in sizes if "iptables-nft, one process per rule" in out["sizes"][k]]
    for k in sizes:
        if k not in measured and len(measured) >= 2:
            a, b = measured[-2], measured[-1]
            ta = out["sizes"][a]["iptables-nft, one process per rule"]["median_ms"]
            tb = out["sizes"][b]["iptables-nft, one process per rule"]["median_ms"]
            import math
            expo = math.log(tb / ta) / math.log(int(b) / int(a))
            est = tb * (int(k) / int(b)) ** expo
            out["sizes"][k]["iptables-nft, one process per rule"] = {
                "n": 0, "median_ms": round(est, 1), "p95_ms": None, "samples_ms": [],
                "note": f"extrapolated from N={a},{b} (time ~ N^{expo:.2f}), not measured"}
    return out


# ------------------------------------------------------------------------ 4. taps scale

def taps_scale(p: dict) -> dict:
    tmp = Path(p["tmp"])
    st = tmp / "state"
    out: dict = {"sizes": {}}
    group = 4242
    base_links = link_count()
    for n in p["sizes"]:
        reps = p["reps"]
        name = f"taps{n}"
        topo = tmp / f"{name}.toml"
        topo.write_text(taps_toml(name, n))
        taps = [f"kvbt{i}" for i in range(n)]
        br = "kvbipbr0"
        create_sh = tmp / f"{name}-create.sh"
        create_sh.write_text("#!/bin/bash\nset -e\n" + f"ip link add {br} type bridge\nip link set {br} up\n" + "".join(
            f"ip tuntap add dev {t} mode tap vnet_hdr\nip link set {t} master {br} group {group} up\n" for t in taps))
        delete_sh = tmp / f"{name}-delete.sh"
        delete_sh.write_text("#!/bin/bash\nset -e\n" + "".join(f"ip link del {t}\n" for t in taps) + f"ip link del {br}\n")
        create_b = tmp / f"{name}-create.batch"
        create_b.write_text(f"link add {br} type bridge\nlink set {br} up\n" + "".join(
            f"tuntap add dev {t} mode tap vnet_hdr\nlink set {t} master {br} group {group} up\n" for t in taps))
        delete_b = tmp / f"{name}-delete.batch"
        delete_b.write_text("".join(f"link del {t}\n" for t in taps) + f"link del {br}\n")

        def ip_created():
            if link_count() != base_links + n + 1:
                raise CommandFailed(f"expected {n} taps and a bridge, found {link_count() - base_links} links")

        def ip_gone():
            if link_count() != base_links:
                raise CommandFailed(f"{link_count() - base_links} links left after the teardown")

        def group_teardown():
            run(["ip", "link", "del", "group", str(group)])
            run(["ip", "link", "del", br])

        perlink_reps = reps if n <= p["perlink_full_max"] else p["perlink_big_reps"]
        perop_reps = reps if n <= p["perop_full_max"] else p["perop_big_reps"]
        s = {k: [] for k in ("op_create", "op_delete", "b_create", "b_delete", "g_create", "g_delete")}
        ph = {"apply": [], "destroy": []}
        variants = ["phases", "perop", "batch", "group"]  # kvmnet through the phase driver, as in section 3
        for r in range(reps):
            for v in rotate(variants, r):
                if v == "phases":
                    ph["apply"].append(phases_run(["apply", str(topo)], st, tmp / "ph.json")[1])
                    ip_created()
                    ph["destroy"].append(phases_run(["destroy", str(topo)], st, tmp / "ph.json")[1])
                    ip_gone()
                elif v == "perop" and r < perop_reps:
                    s["op_create"].append(timed(["bash", str(create_sh)], timeout=900))
                    ip_created()
                    if r < perlink_reps:
                        s["op_delete"].append(timed(["bash", str(delete_sh)], timeout=900))
                    else:
                        group_teardown()
                    ip_gone()
                elif v == "batch":
                    s["b_create"].append(timed(["ip", "-batch", str(create_b)], timeout=900))
                    ip_created()
                    if r < perlink_reps:
                        s["b_delete"].append(timed(["ip", "-batch", str(delete_b)], timeout=900))
                    else:
                        group_teardown()
                    ip_gone()
                elif v == "group":
                    s["g_create"].append(timed(["ip", "-batch", str(create_b)], timeout=900))
                    ip_created()
                    t0 = time.perf_counter()
                    group_teardown()
                    s["g_delete"].append(time.perf_counter() - t0)
                    ip_gone()
            log(f"taps_scale: N={n} rep {r + 1}/{reps} done")
        if p.get("profiles") and n == max(p["sizes"]):
            profile_kvmnet(["apply", str(topo)], st, tmp, Path(p["profiles"]) / f"taps-{n}-apply.txt",
                           f"kvmnet apply ({n} taps on one bridge)")
            profile_kvmnet(["destroy", str(topo)], st, tmp, Path(p["profiles"]) / f"taps-{n}-destroy.txt",
                           f"kvmnet destroy ({n} taps on one bridge)")

        def few(xs):
            return None if len(xs) >= 5 else f"only {len(xs)} run(s)"

        size = {
            "kvmnet apply (whole process)": stats([x["wall_s"] for x in ph["apply"]]),
            "kvmnet destroy (whole process)": stats([x["wall_s"] for x in ph["destroy"]]),
            "ip, one process per operation: create": stats(s["op_create"], few(s["op_create"])),
            "ip -batch: create": stats(s["b_create"]),
            "ip -batch: delete (one link del per tap)": stats(s["b_delete"], few(s["b_delete"])),
            "ip -batch create, then ip link del group": stats(s["g_create"]),
            "ip link del group (+ bridge)": stats(s["g_delete"]),
            "phases": {k: phase_summary(v) for k, v in ph.items()},
        }
        if s["op_delete"]:
            size["ip, one process per operation: delete"] = stats(s["op_delete"], few(s["op_delete"]))
        nl = {what: stats([bucket_sum(x, lambda k: k == "exec: netlink") for x in ph[what]]) for what in ph}
        size["kvmnet netlink steps (from the phase driver)"] = nl
        size["kvmnet per tap (ms)"] = {
            "create, netlink steps": round(nl["apply"]["median_ms"] / n, 3),
            "create, whole apply": round(size["kvmnet apply (whole process)"]["median_ms"] / n, 3),
            "delete, netlink steps": round(nl["destroy"]["median_ms"] / n, 3),
            "delete, whole destroy": round(size["kvmnet destroy (whole process)"]["median_ms"] / n, 3),
        }
        out["sizes"][str(n)] = size
    return out


# ------------------------------------------------------------------------------ 5. hooks

def hooks(p: dict) -> dict:
    rounds, tmp = p["rounds"], Path(p["tmp"])
    st = tmp / "state"
    seed_run = tmp / "seed-run"
    seed_run.mkdir()
    env_k = kv_env(st)
    # kvmnet's network (virbr0), applied; the seed's own network on virbr1, set up by the seed
    # script itself on a first call, so every timed seed call takes its "bridge exists" path
    run([KVMNET, "apply", NAT_TOML], env=env_k)
    seed_env = {"SEED_RUNDIR": str(seed_run), "SEED_BRIDGE": "virbr1", "SEED_NETWORK": "192.168.123.0",
                "SEED_GATEWAY": "192.168.123.1", "SEED_DHCPRANGE": "192.168.123.2,192.168.123.254"}
    run(["ip", "tuntap", "add", "dev", "kvbsd0", "mode", "tap"])
    run(["bash", SEED_IFUP, "kvbsd0"], env=seed_env)
    if not (seed_run / "qemu-dhcp-virbr1.pid").exists():
        raise CommandFailed("the seed script did not start its dnsmasq")
    tap = "kvbhk0"
    run(["ip", "tuntap", "add", "dev", tap, "mode", "tap"])  # as QEMU would have made it
    bare_up, bare_down = tmp / "bare-ifup", tmp / "bare-ifdown"
    bare_up.write_text('#!/bin/bash\nip link set "$1" master virbr0 up\n')
    bare_down.write_text('#!/bin/bash\nip link set "$1" nomaster down\n')
    for f in (bare_up, bare_down):
        f.chmod(0o755)

    s = {k: [] for k in ("k_up", "k_down", "seed_up", "bare_up", "bare_down", "pass", "k_up_nopyc")}
    env_nopyc = dict(env_k, PYTHONPYCACHEPREFIX="", PYTHONDONTWRITEBYTECODE="1")  # this environment's default

    def attached(to: str | None):
        if master_of(tap) != to:
            raise CommandFailed(f"{tap}: master {master_of(tap)}, expected {to}")

    try:
        for r in range(rounds):
            for v in rotate(["kvmnet", "seed", "bare", "pass", "nopyc"], r):
                if v == "nopyc":
                    s["k_up_nopyc"].append(timed([IFUP, tap], env=env_nopyc))
                    attached("virbr0")
                    run(["ip", "link", "set", tap, "nomaster", "down"])
                elif v == "kvmnet":
                    s["k_up"].append(timed([IFUP, tap], env=env_k))
                    attached("virbr0")
                    s["k_down"].append(timed([IFDOWN, tap], env=env_k))
                    attached(None)
                elif v == "seed":
                    s["seed_up"].append(timed([SEED_IFUP, tap], env=seed_env))
                    attached("virbr1")
                    run(["ip", "link", "set", tap, "nomaster", "down"])
                elif v == "bare":
                    s["bare_up"].append(timed([str(bare_up), tap]))
                    attached("virbr0")
                    s["bare_down"].append(timed([str(bare_down), tap]))
                    attached(None)
                else:
                    s["pass"].append(timed([PY, "-c", "pass"]))
        log(f"hooks: {rounds} rounds done")
        imp = run([PY, "-X", "importtime", IFUP, tap], env=env_k).stderr
        run(["ip", "link", "set", tap, "nomaster", "down"])
    finally:
        kill_pidfile(seed_run / "qemu-dhcp-virbr1.pid", str(seed_run))
        run([KVMNET, "destroy", NAT_TOML], env=env_k, check=False)
        sh(f"ip link del {tap}; ip link del kvbsd0; ip link del virbr1; nft delete table ip nat; true", check=False)

    parsed = importtime(imp)
    res = {
        "rounds": rounds,
        "kvmnet-ifup": stats(s["k_up"]),
        "kvmnet-ifdown": stats(s["k_down"]),
        "seed qemu-ifup-NAT (bridge exists)": stats(s["seed_up"]),
        "bare bash hook: ip link set master up": stats(s["bare_up"]),
        "bare bash hook: ip link set nomaster down": stats(s["bare_down"]),
        "python -c pass": stats(s["pass"]),
        "kvmnet-ifup without cached bytecode (PYTHONDONTWRITEBYTECODE=1, no __pycache__)": stats(s["k_up_nopyc"]),
        "kvmnet_pycache_dir_present": (REPO / "kvmnet" / "__pycache__").is_dir(),
        "ifup_importtime": dict(parsed, note="python -X importtime .venv/bin/kvmnet-ifup TAP (one run; the entry "
                                                "script's own `import re` included)"),
    }
    return res


# -------------------------------------------------------------------------- 6. data plane

PING = "ping" if shutil.which("ping") else "busybox ping"


def dataplane(p: dict) -> dict:
    """TCP throughput (iperf3, one stream) and minimum RTT between two namespaces: over a veth
    pair, and over veth -> bridge (in this namespace) -> veth. No guest involved."""
    a, b = p["peers"]
    secs = p["seconds"]

    def ns(name, cmd):
        return run(["ip", "netns", "exec", name, *cmd.split()])

    ns(a, f"ip link add kvbdA type veth peer name kvbdB netns {b}")
    ns(a, "ip addr add 10.201.0.1/24 dev kvbdA")
    ns(b, "ip addr add 10.201.0.2/24 dev kvbdB")
    run(["ip", "link", "add", "kvbdpbr", "type", "bridge", "forward_delay", "0"])
    run(["ip", "link", "set", "kvbdpbr", "up"])
    for peer, inner, addr in ((a, "kvbbA", "10.202.0.1/24"), (b, "kvbbB", "10.202.0.2/24")):
        run(["ip", "link", "add", f"{inner}h", "type", "veth", "peer", "name", inner, "netns", peer])
        run(["ip", "link", "set", f"{inner}h", "master", "kvbdpbr", "up"])
        ns(peer, f"ip addr add {addr} dev {inner}")
        ns(peer, f"ip link set {inner} up")
    for peer in (a, b):
        ns(peer, "ip link set lo up")
    ns(a, "ip link set kvbdA up")
    ns(b, "ip link set kvbdB up")
    server = subprocess.Popen(["ip", "netns", "exec", b, "iperf3", "-s", "-p", "5201"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = {}
    try:
        time.sleep(0.5)
        for label, ip in (("veth", "10.201.0.2"), ("veth -> bridge -> veth", "10.202.0.2")):
            ping = ns(a, f"{PING} -c 100 -i 0.005 -q {ip}").stdout
            rtt = [float(x) for x in ping.rsplit("=", 1)[1].split()[0].split("/")]
            gbps = []
            for _ in range(p["reps"]):
                res = json.loads(ns(a, f"iperf3 -c {ip} -p 5201 -t {secs} -J").stdout)
                gbps.append(res["end"]["sum_received"]["bits_per_second"] / 1e9)
            out[label] = {"gbit_s_median": round(percentile(gbps, 0.5), 2), "gbit_s_samples": [round(g, 2) for g in gbps],
                          "rtt_min_us": round(rtt[0] * 1000, 1), "rtt_avg_us": round(rtt[1] * 1000, 1)}
    finally:
        server.terminate()
        server.wait(timeout=5)
    out["note"] = f"iperf3 -t {secs}, one TCP stream, {p['reps']} runs each; ping -c 100 -i 0.005"
    return out


SECTIONS = {"cold_nat": cold_nat, "noop_reapply": noop_reapply, "forwards_scale": forwards_scale,
            "taps_scale": taps_scale, "hooks": hooks,
            "dataplane": dataplane}


def main() -> int:
    section, params_path, out_path = sys.argv[1:4]
    params = json.loads(Path(params_path).read_text())
    t0 = time.perf_counter()
    try:
        result = SECTIONS[section](params)
        result["status"] = "ok"
    except Exception as exc:  # reported in the results, the other sections still run
        import traceback
        traceback.print_exc()
        result = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:2000]}
    result["section_wall_s"] = round(time.perf_counter() - t0, 2)
    Path(out_path).write_text(json.dumps(result, indent=1))
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
