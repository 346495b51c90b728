"""Section 9: the big topology (16 networks, 1000 guests with one tap each, 10,000 port
forwards) at 1/4, 1/2 and full size: apply, no-op re-apply, destroy, peak RSS, the marginal
cost of forwards against raw `nft -f`, and a small change (one guest + one forward added then
removed) to the full topology."""

from __future__ import annotations

from kvmnet import naming

NETWORKS = 16


def guest_net(i: int, nets: int) -> int:
    return i % nets


def guest_ip(i: int, nets: int) -> str:
    k = i // nets  # the guest's index on its network: 10.(100+net).(1+k//200).(10+k%200)
    return f"10.{100 + guest_net(i, nets)}.{1 + k // 200}.{10 + k % 200}"


def net_lines(j: int) -> list[str]:
    return [f"[networks.n{j:02d}]", 'mode = "nat"', f'bridge = "kvbs{j:02d}"', f'subnet = "10.{100 + j}.0.0/20"',
            f'gateway = "10.{100 + j}.0.1"', "", f"[networks.n{j:02d}.dhcp]", f'start = "10.{100 + j}.8.1"',
            f'end = "10.{100 + j}.15.254"', ""]


def big_toml(name: str, nets: int, guests: int, forwards: int, extra: str = "") -> str:
    """`nets` NAT networks with DHCP; `guests` guests with one NIC and a static lease each
    (round-robin over the networks); `forwards` TCP forwards to them (round-robin over guests).
    extra="guest": one more guest `gx` with one forward (the small change)."""
    out = [f'name = "{name}"', ""]
    for j in range(nets):
        out += net_lines(j)
        for k in range(j, forwards, nets):
            pass
    fw_by_net: dict[int, list[str]] = {j: [] for j in range(nets)}
    for k in range(forwards):
        g = k % guests
        fw_by_net[guest_net(g, nets)] += ["proto = \"tcp\"", f"host_port = {20000 + k}", f'guest = "g{g:04d}"',
                                          f"guest_port = {80 + k // guests}"]
    body = []
    for j in range(nets):
        lines = fw_by_net[j]
        for x in range(0, len(lines), 4):
            body += [f"[[networks.n{j:02d}.forwards]]", *lines[x:x + 4], ""]
    if extra == "guest":
        body += ["[[networks.n00.forwards]]", 'proto = "tcp"', "host_port = 19999", 'guest = "gx"', "guest_port = 80", ""]
    out += body
    for i in range(guests):
        out += [f"[guests.g{i:04d}]", f"[[guests.g{i:04d}.nics]]", f'network = "n{guest_net(i, nets):02d}"',
                f'ip = "{guest_ip(i, nets)}"', ""]
    if extra == "guest":
        out += ["[guests.gx]", "[[guests.gx.nics]]", 'network = "n00"', 'ip = "10.100.7.250"', ""]
    return "\n".join(out)


# ----------------------------------------------------------------------------- measuring

import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from bench.lib import pure_growth  # noqa: E402
from bench.lib.held_connection import HeldConnection, held_ok  # noqa: E402
from bench.lib.common import KVMNET, CommandFailed, Sample, log, rotate, run, sh, stats, timed  # noqa: E402
from bench.lib.phaserun import kv_env, profile_kvmnet  # noqa: E402
from bench.lib.report import Table, med, ratio, target  # noqa: E402
from bench.lib.zero_writes import Monitors, snapshot  # noqa: E402

NAME = "scale"
TITLE = "9. Scale: the big topology (16 networks, 1000 guests with one tap each, 10,000 forwards)"
FULL_GUESTS, FULL_FORWARDS = 1000, 10000
APPLY, NOOP, DESTROY, RSS = "apply (whole process)", "no-op re-apply (whole process)", "destroy (whole process)", "peak_rss_mb"
KV_FW, RAW_FW, KV_ONE = "kvmnet apply, N forwards", "nft -f, N DNAT rules (one process)", "kvmnet apply, 1 forward"
ADD, REMOVE = "add one guest + forward (whole apply)", "remove it again (whole apply)"
SIZES, FORWARDS, CHANGE, ZERO, SHRINK = "sizes", "forwards", "small_change", "zero_writes", "remove_every_guest"
PURE = "pure_work_in_process"
STEP_LINE = re.compile(r"^\s+\d+\. (.*)$", re.M)


def params(quick: bool, profiles: str | None) -> dict:
    if quick:  # 1/16 of the big topology; no settle/monitor proof (seconds): the plan's emptiness instead
        return {"divisors": [16], "nets": 4, "reps": 1, "noop_reps": 1, "fw_sizes": [100], "fw_reps": 1,
                "change_reps": 1, "monitors": False, "pure_rounds": 2}
    # growth is judged on the difference of medians between sizes (tens of ms of cpu for the no-op):
    # 3 samples each let one slow sample swing the slope ratio from 0.4 to 2.7 between runs, so
    # every size takes 5 cold applies and destroys and 5 x 5 no-ops
    return {"divisors": [4, 2, 1], "nets": NETWORKS, "reps": 5, "noop_reps": 5, "fw_sizes": [1000, 10000], "fw_reps": 3,
            "change_reps": 7, "monitors": True, "profiles": profiles, "pure_rounds": 25}


def peers(p: dict) -> int:
    return 1  # the stand-in guest of the connection held through the small change


def timed_rss(argv: list[str], env: dict, expect: str, timeout: float = 600) -> tuple[Sample, float, str]:
    """(wall + CPU of the process, its own peak RSS in MB from wait4, its stdout)."""
    out = Path(env["KVMNET_STATE_DIR"]).parent / "out.txt"
    with open(out, "w") as f:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=dict(os.environ, **env), stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = out.read_text()
    if proc.returncode != 0 or expect not in text:
        raise CommandFailed(f"{' '.join(argv)}: exit {proc.returncode}, expected {expect!r}: {text[-800:]}")
    return Sample.of(wall, ru.ru_utime + ru.ru_stime), ru.ru_maxrss / 1024, text


def kv(args: list[str], st: Path, expect: str) -> tuple[Sample, float, str]:
    return timed_rss([KVMNET, *args], kv_env(st), expect)


def sizes(p: dict) -> tuple[dict, dict]:
    """Cold apply, no-ops and destroy of each size, the sizes interleaved in every repetition (in
    a rotating order: the VM's speed drifts over the minute this takes, and run one size after
    another that drift read as growth; a no-op at 1/4 once came out slower than at 1/2). After
    the full size's last no-ops: the proof of zero writes, the small change and the shrink.
    (results by size, those of the full size's last repetition)"""
    tmp, st = Path(p["tmp"]), Path(p["tmp"]) / "state"
    topos, s = {}, {}
    for d in p["divisors"]:
        topos[d] = tmp / f"big-{d}.toml"
        topos[d].write_text(size_text(p, d))
        s[d] = {APPLY: [], NOOP: [], DESTROY: [], RSS: []}
    full, last = min(p["divisors"]), {}
    for r in range(p["reps"]):
        for d in rotate(list(p["divisors"]), r):
            one_rep(p, topos[d], st, s[d])
            if r == p["reps"] - 1 and d == full:
                last = full_size_checks(p, topos[d], st)
            s[d][DESTROY].append(kv(["destroy", str(topos[d])], st, "destroy")[0])
            log(f"scale: 1/{d} rep {r + 1}/{p['reps']} done")
    out = {f"1/{d}": {"guests": FULL_GUESTS // d, "forwards": FULL_FORWARDS // d,
                      **{k: stats(s[d][k]) for k in (APPLY, NOOP, DESTROY)},
                      RSS: {"median": sorted(s[d][RSS])[len(s[d][RSS]) // 2], "max": max(s[d][RSS])}}
           for d in p["divisors"]}
    return out, last


def size_text(p: dict, d: int) -> str:
    """The big topology at 1/d of its size."""
    return big_toml("big", p["nets"], FULL_GUESTS // d, FULL_FORWARDS // d)


def one_rep(p: dict, topo: Path, st: Path, s: dict) -> None:
    """One cold apply (its peak RSS) and its no-ops; the caller destroys."""
    t, rss, _ = kv(["apply", str(topo)], st, "applied")
    s[APPLY].append(t)
    s[RSS].append(rss)
    s[NOOP] += [kv(["apply", str(topo)], st, "already in sync")[0] for _ in range(p["noop_reps"])]


def full_size_checks(p: dict, topo: Path, st: Path) -> dict:
    guests, forwards = FULL_GUESTS // min(p["divisors"]), FULL_FORWARDS // min(p["divisors"])
    last = {ZERO: zero_writes(p, topo, st), CHANGE: small_change(p, topo, st, guests, forwards),
            SHRINK: shrink(p, topo, st, guests)}
    topo.write_text(size_text(p, min(p["divisors"])))
    if p.get("profiles"):
        profiles(p, topo, st, guests, forwards)
    return last


def profiles(p: dict, topo: Path, st: Path, guests: int, forwards: int) -> None:
    """cProfile of the no-op re-apply, the small change both ways, a destroy and a cold apply
    (the topology is left applied)."""
    tmp, dest, what = Path(p["tmp"]), Path(p["profiles"]), f"{guests} guests, {forwards} forwards"
    profile_kvmnet(["apply", str(topo)], st, tmp, dest / "scale-noop.txt", f"kvmnet apply, no-op ({what})")
    base = topo.read_text()
    for label, text in (("add", big_toml("big", p["nets"], guests, forwards, "guest")), ("remove", base)):
        topo.write_text(text)
        profile_kvmnet(["apply", str(topo)], st, tmp, dest / f"scale-small-change-{label}.txt",
                       f"kvmnet apply, small change: {label} one guest and its forward ({what})")
    profile_kvmnet(["destroy", str(topo)], st, tmp, dest / "scale-destroy.txt", f"kvmnet destroy ({what})")
    profile_kvmnet(["apply", str(topo)], st, tmp, dest / "scale-apply.txt", f"kvmnet apply, cold ({what})")


def watched(st: Path) -> list[Path]:
    return sorted(f for f in (st / "big").rglob("*") if f.is_file() and not f.name.endswith(".leases"))


def settle(files: list[Path]) -> dict:
    """Snapshots 1 s apart until three agree: the kernel finishes by itself what follows
    making links (linkwatch), which are not writes by anyone."""
    before, t0, stable = snapshot(files), time.monotonic(), 0
    while stable < 2 and time.monotonic() - t0 < 30:
        time.sleep(1)
        again = snapshot(files)
        stable, before = (stable + 1 if again == before else 0), again
    return before


def zero_writes(p: dict, topo: Path, st: Path) -> dict:
    """Two more no-op re-applies: with snapshots before/after and monitors during (full runs),
    or (--quick) the plan's emptiness as the phase driver sees it."""
    if not p["monitors"]:
        t, _, text = kv(["apply", str(topo)], st, "already in sync")
        return {"unchanged": "already in sync" in text, "how": "--quick: kvmnet reported nothing to do", "events": None}
    files = watched(st)
    before = settle(files)
    mon = Monitors(Path(p["tmp"]), "scale")
    try:
        for _ in range(2):
            kv(["apply", str(topo)], st, "already in sync")
    finally:
        events = mon.stop()
    after = snapshot(files)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return {"unchanged": not changed and events["nft"]["events"] == 0 and events["ip"]["events"] == 0,
            "changed": changed, "events": {k: v["events"] for k, v in events.items()},
            "nft_rules_with_handles": before["nft ruleset (with handles)"].count("# handle"),
            "links": sum(1 for k in before if k.startswith("link ")),
            "how": "snapshots (links by ifindex/flags/linkinfo, addresses, routes, nft -a ruleset, state files) "
                   "before/after two re-applies, nft monitor + ip monitor during"}


def host_view(st: Path) -> tuple[dict, dict, dict]:
    """(link name -> ifindex, state file -> sha256, network -> dnsmasq pid)."""
    import hashlib
    links = {l["ifname"]: l["ifindex"] for l in json.loads(run(["ip", "-j", "link", "show"]).stdout)}
    files = {str(f.relative_to(st)): hashlib.sha256(f.read_bytes()).hexdigest()
             for f in sorted((st / "big").rglob("*")) if f.is_file() and not f.name.endswith(".pid")}
    pids = {f.name[len("dnsmasq-"):-len(".pid")]: f.read_text().strip() for f in (st / "big").glob("dnsmasq-*.pid")}
    return links, files, pids


def diff(a: dict, b: dict) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def small_change(p: dict, topo: Path, st: Path, guests: int, forwards: int) -> dict:
    """One guest (one NIC, a static lease) and one forward added, then removed, on the applied
    topology: whole `kvmnet apply` each, what it did, and what changed on the host."""
    base, extra = topo.read_text(), big_toml("big", p["nets"], guests, forwards, "guest")
    s = {ADD: [], REMOVE: []}
    seen = {}
    held = HeldConnection(  # through g0000's first forward (host port 20000 -> 80), from the host's n00 address
        p["peers"][0], "kvbs00", f"{guest_ip(0, p['nets'])}/20", "10.100.0.1", 80, 20000)
    for r in range(p["change_reps"]):
        for label, text in ((ADD, extra), (REMOVE, base)):
            before = host_view(st)
            topo.write_text(text)
            t, _, out = kv(["apply", str(topo)], st, "applied")
            after = host_view(st)
            s[label].append(t)
            seen[label] = {"steps": STEP_LINE.findall(out), "links_changed": diff(before[0], after[0]),
                           "files_changed": diff(before[1], after[1]), "dnsmasq_restarted": diff(before[2], after[2]),
                           "held_connection": held.survived(f"{label} {r}")}
    held.close()  # on an error, the driver's namespace removal stops its server
    topo.write_text(base)
    return {**{k: stats(v) for k, v in s.items()}, "what": seen, RAW_CHANGE: raw_change(p, st, forwards)}


RAW_CHANGE = "raw_tools"
_RAW_TABLE, _RAW_BRIDGE, _RAW_TAP = "kvbench_raw", "kvrawbr", "kvrawt0"


def raw_change(p: dict, st: Path, forwards: int) -> dict:
    """The same host change by the raw tools, one shell each way, in the same namespace: a tap
    made and put on a bridge, a forward added to a map of as many forwards, dnsmasq told to
    reload; then all of it undone. On a table and bridge of their own: kvmnet's are left as
    applied. Both pay the kernel's waits that kvmnet pays (a tap's deletion waits for an RCU
    barrier; `nft` exiting after it deleted an element, for nf_tables' clean-up)."""
    elements = ", ".join(f"tcp . {20000 + i} : 10.100.1.{10 + i % 200} . 80" for i in range(forwards))
    sh(f"ip link add {_RAW_BRIDGE} type bridge && ip link set {_RAW_BRIDGE} up")
    run(["nft", "-f", "-"], input=f"table inet {_RAW_TABLE} {{\n\tmap fwd_any {{\n\t\ttype inet_proto . inet_service : "
        f"ipv4_addr . inet_service\n\t\telements = {{ {elements} }}\n\t}}\n\tchain prerouting {{\n\t\ttype nat hook "
        f"prerouting priority dstnat; policy accept;\n\t\tfib daddr type local dnat ip to meta l4proto . th dport map @fwd_any\n"
        f"\t}}\n}}\n")
    pid = (st / "big" / "dnsmasq-n00.pid").read_text().strip()
    element = "{ tcp . 19999 : 10.100.7.250 . 80 }"
    scripts = {ADD: f"ip tuntap add dev {_RAW_TAP} mode tap && ip link set {_RAW_TAP} master {_RAW_BRIDGE} up && "
                    f"nft add element inet {_RAW_TABLE} fwd_any '{element}' && kill -HUP {pid}",
               REMOVE: f"ip link del {_RAW_TAP} && nft delete element inet {_RAW_TABLE} fwd_any '{element}' && kill -HUP {pid}"}
    out = {ADD: [], REMOVE: []}
    try:
        for _ in range(p["change_reps"]):
            for label in (ADD, REMOVE):
                out[label].append(timed(["bash", "-c", scripts[label]]))
    finally:
        sh(f"ip link del {_RAW_TAP} 2>/dev/null; ip link del {_RAW_BRIDGE}; nft delete table inet {_RAW_TABLE}", check=False)
    return {k: stats(v) for k, v in out.items()}


def shrink(p: dict, topo: Path, st: Path, guests: int) -> dict:
    """Every guest (and so every forward) removed by one apply, the networks kept; then put back."""
    base = topo.read_text()
    topo.write_text(big_toml("big", p["nets"], 0, 0))
    t, _, out = kv(["apply", str(topo)], st, "applied")
    topo.write_text(base)
    kv(["apply", str(topo)], st, "applied")
    return {"guests": guests, "time": stats([t]), "steps": len(STEP_LINE.findall(out))}


def change_ok(c: dict) -> list[str]:
    """What the small change touched beyond its own guest: empty when only the guest's tap,
    the firewall table (its forward), n00's dnsmasq host files and kvmnet's own record (with the
    applied text beside it) changed."""
    bad = []
    own_files = {"big/state.json", "big/hooks", "big/dnsmasq-n00.d/dhcp-hosts", "big/dnsmasq-n00.d/hosts"}
    for label, w in c["what"].items():
        if w["links_changed"] != [naming.tap_name("big", "gx", 0)]:
            bad.append(f"{label}: links changed {w['links_changed']}")
        others = {f for f in w["files_changed"] if f not in own_files and not _applied_text(f)}
        if others:
            bad.append(f"{label}: files changed {sorted(others)}")
        if w["dnsmasq_restarted"]:
            bad.append(f"{label}: dnsmasq restarted for {w['dnsmasq_restarted']}")
        bad += [f"{label}: {x}" for x in held_ok(w.get("held_connection"))]
        if len(w["steps"]) != 3:
            bad.append(f"{label}: {len(w['steps'])} steps: {w['steps'][:6]}")
    return bad


def _applied_text(path: str) -> bool:
    """big/source-<sha256>.toml: the file's text as applied, which a change replaces."""
    name = path.removeprefix("big/")
    return name.startswith("source-") and name.endswith(".toml") and "/" not in name


def fw_ip(k: int) -> str:
    return f"10.99.{1 + k // 200}.{10 + k % 200}"


def fw_toml(n: int) -> str:
    """One NAT network (no DHCP, no guests: the fixed cost stays small and steady) with n TCP
    forwards to addresses on it."""
    out = ['name = "fw"', "", "[networks.fw]", 'mode = "nat"', 'bridge = "kvbsfw"', 'subnet = "10.99.0.0/16"',
           'gateway = "10.99.0.1"', ""]
    for k in range(n):
        out += ["[[networks.fw.forwards]]", 'proto = "tcp"', f"host_port = {20000 + k}", f'guest = "{fw_ip(k)}"',
                "guest_port = 8080", ""]
    return "\n".join(out)


def raw_nft(path: Path, n: int) -> None:
    rules = "".join(f"    tcp dport {20000 + k} dnat to {fw_ip(k)}:8080\n" for k in range(n))
    path.write_text("table ip kvbraw {\n  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n"
                    + rules + "  }\n}\n")


def forwards(p: dict) -> dict:
    """The marginal cost of N forwards in a whole `kvmnet apply` (fw_toml: apply with N
    forwards minus apply with 1) against raw `nft -f` of the same N as one DNAT rule each."""
    tmp = Path(p["tmp"])
    st, out = tmp / "fwstate", {}
    one = tmp / "fw-1.toml"
    one.write_text(fw_toml(1))
    for n in p["fw_sizes"]:
        topo, nft = tmp / f"fw-{n}.toml", tmp / f"raw-{n}.nft"
        topo.write_text(fw_toml(n))
        raw_nft(nft, n)
        s = {KV_FW: [], KV_ONE: [], RAW_FW: []}
        for r in range(p["fw_reps"]):
            for v in rotate([KV_FW, KV_ONE, RAW_FW], r):
                if v == RAW_FW:
                    s[v].append(timed_rss(["nft", "-f", str(nft)], kv_env(st), "")[0])
                    sh("nft delete table ip kvbraw")
                else:
                    f = topo if v == KV_FW else one
                    s[v].append(kv(["apply", str(f)], st, "applied")[0])
                    kv(["destroy", str(f)], st, "destroy")
        out[str(n)] = {k: stats(v) for k, v in s.items()}
        if p.get("profiles") and n == max(p["fw_sizes"]):
            profile_kvmnet(["apply", str(topo)], st, tmp, Path(p["profiles"]) / f"scale-forwards-{n}-apply.txt",
                           f"kvmnet apply, cold ({n} forwards, one network)")
            kv(["destroy", str(topo)], st, "destroy")
        log(f"scale: forwards N={n} done")
    return out


def measure(p: dict) -> dict:
    by_size, last = sizes(p)
    res = {SIZES: by_size, FORWARDS: forwards(p)}
    res[PURE] = pure_growth.measure({f"1/{d}": size_text(p, d) for d in p["divisors"]}, p["pure_rounds"])
    res[ZERO], res[CHANGE], res[SHRINK] = last[ZERO], last[CHANGE], last[SHRINK]
    return res


# ----------------------------------------------------------------------------- reporting

def cpu(d: dict):
    return d.get("cpu_median_ms") if isinstance(d, dict) else None


def slopes(s: dict, key: str, per: str, of=med) -> list[float]:
    """ms (wall, or `of`=cpu) per extra guest (or forward) between consecutive sizes, smallest first."""
    xs = sorted(s[SIZES].values(), key=lambda z: z["guests"])
    return [(of(b[key]) - of(a[key])) / (b[per] - a[per]) for a, b in zip(xs, xs[1:])]


def cpu_min(d: dict):
    return d.get("cpu_min_ms") if isinstance(d, dict) else None


def linear(s: dict, key: str) -> float | None:
    """Slope of the larger step over the smaller: ~1 linear, ~2 quadratic (sizes double). From
    CPU time (on this shared machine wall time also counts waiting for a CPU), of each size's
    least disturbed run (disturbance only adds time): the steps between sizes are tens of ms of
    CPU, and a median of 5 let one slow run swing the ratio from 1.06 to 1.54 between runs."""
    return slope_ratio({k: cpu_min(v[key]) for k, v in s[SIZES].items()}, _guests(s))


def slope_ratio(by_size: dict[str, float], guests: dict[str, int]) -> float | None:
    """ms per extra guest of the largest step over that of the smallest (1 linear, 2 quadratic)."""
    xs = sorted(by_size, key=lambda k: guests[k])
    sl = [(by_size[b] - by_size[a]) / (guests[b] - guests[a]) for a, b in zip(xs, xs[1:])]
    return round(sl[-1] / sl[0], 2) if len(sl) >= 2 and sl[0] > 0 else None


def marginal(f: dict) -> tuple[float, float | None]:
    return med(f[KV_FW]) - med(f[KV_ONE]), (cpu(f[KV_FW]) - cpu(f[KV_ONE])) if cpu(f[KV_FW]) and cpu(f[KV_ONE]) else None


def tables(s: dict) -> list[Table]:
    sizes = list(s[SIZES])
    t = Table(TITLE + " (medians: wall ms / cpu ms)", ["", *[f"{k}: {v['guests']} taps, {v['forwards']} fwd"
                                                          for k, v in s[SIZES].items()]])
    for key in (APPLY, NOOP, DESTROY):
        t.add(key, *[f"{med(s[SIZES][k][key]):,.0f} / {cpu(s[SIZES][k][key]) or 0:,.0f}" for k in sizes])
    t.add("peak RSS of apply (MB, median of runs)", *[s[SIZES][k][RSS]["median"] for k in sizes])
    for key in (APPLY, NOOP, DESTROY):
        sl, sc = slopes(s, key, "guests"), slopes(s, key, "guests", cpu)
        if sl:
            t.notes.append(f"{key}: ms per extra guest (with its 10 forwards) between sizes, wall: "
                           + ", ".join(f"{x:.2f}" for x in sl) + "; cpu: " + ", ".join(f"{x:.2f}" for x in sc)
                           + (f"; cpu of each size's fastest run: larger/smaller step {linear(s, key)} (1 = linear)"
                              if linear(s, key) is not None else ""))
    f = Table("9b. Marginal cost of N forwards in a whole kvmnet apply vs raw nft -f (medians: wall ms / cpu ms)",
              ["", *[f"N={n}" for n in s[FORWARDS]]])
    for key in (KV_FW, KV_ONE, RAW_FW):
        f.add(key, *[f"{med(v[key]):,.0f} / {cpu(v[key]) or 0:,.0f}" for v in s[FORWARDS].values()])
    f.add("kvmnet marginal (N - 1 forward)", *[f"{marginal(v)[0]:,.0f} / {marginal(v)[1] or 0:,.0f}" for v in s[FORWARDS].values()])
    f.add("ratio marginal / nft -f (wall)", *[ratio(marginal(v)[0], med(v[RAW_FW])) for v in s[FORWARDS].values()])
    f.add("ratio marginal / nft -f (cpu)", *[ratio(marginal(v)[1], cpu(v[RAW_FW])) for v in s[FORWARDS].values()])
    f.notes.append("kvmnet: one NAT network without DHCP, N forwards to addresses on it; nft -f: one table, one nat prerouting chain, N `tcp dport P dnat to G:port` rules")
    c = Table("9c. Small change to the largest topology (one guest, one NIC, one forward; medians)",
              ["", "wall ms", "cpu ms", "n", "steps", "links changed", "files changed", "dnsmasq restarted"])
    ch = s[CHANGE]
    for key in (ADD, REMOVE):
        w = ch["what"][key]
        c.add(key, med(ch[key]), cpu(ch[key]), str(ch[key]["n"]), str(len(w["steps"])), ", ".join(w["links_changed"]),
              ", ".join(x.replace("big/", "") for x in w["files_changed"]), ", ".join(w["dnsmasq_restarted"]) or "none")
    raw = ch.get(RAW_CHANGE)
    if raw:
        for key in (ADD, REMOVE):
            c.add(f"raw tools, the same host change: {key.split(' (')[0]}", med(raw[key]), cpu(raw[key]), str(raw[key]["n"]),
                  "", "", "", "")
        c.notes.append("raw tools: `ip tuntap add` + `ip link set master up` + `nft add element` + `kill -HUP dnsmasq` "
                       "(and `ip link del` + `nft delete element` + `kill -HUP`), one bash each, on a bridge and a map of as many "
                       "forwards of their own: the kernel's waits both pay, and what is left is kvmnet's")
    sh = s.get(SHRINK)
    if sh:
        c.notes.append(f"every guest removed by one apply (the networks stay): {med(sh['time']):,.0f} ms wall / "
                       f"{cpu(sh['time']) or 0:,.0f} ms cpu, {sh['steps']} steps, {sh['guests']} taps in one request")
    zw = s[ZERO]
    c.notes.append(f"no-op re-apply zero writes: {'YES' if zw['unchanged'] else 'NO'} ({zw['how']}"
                   + (f"; events {zw['events']}, {zw['nft_rules_with_handles']} nft rules, {zw['links']} links"
                      if zw.get("events") else "") + ")")
    g = Table("9d. The pure work in-process by size (the fastest of its rounds, sizes interleaved in each; ms)",
              ["", *[f"{k}: {v['guests']} guests" for k, v in s[SIZES].items()], "slope ratio (1 = linear)"])
    for work, by_size in s.get(PURE, {}).items():
        g.add(work, *[f"{by_size[k]:,.1f}" for k in s[SIZES]], str(slope_ratio(by_size, _guests(s))))
    g.notes.append("whole-process times vary ~25% from run to run on this VM and its speed changes in phases of "
                   "seconds; these rows take the work out of the process and the phases out of the comparison")
    return [t, f, c, g]


def _guests(s: dict) -> dict[str, int]:
    return {k: v["guests"] for k, v in s[SIZES].items()}


def targets(s: dict) -> list[dict]:
    full = s[SIZES].get("1/1")
    sub = "" if full else "--quick size"
    big = full or list(s[SIZES].values())[-1]
    out = []
    for n, v in s[FORWARDS].items():
        m, raw = marginal(v)[0], med(v[RAW_FW])
        out.append(target(f"{n} forwards: marginal cost in a whole apply <= 2x raw nft -f", f"{m / raw:.2f}x ({m:.0f} vs "
                          f"{raw:.0f} ms; cpu {ratio(marginal(v)[1], cpu(v[RAW_FW]))})", "<= 2x",
                          m <= 2 * raw if n in ("1000", "10000") else None, "" if n in ("1000", "10000") else "--quick size"))
    for key in (APPLY, NOOP, DESTROY):
        k = linear(s, key)
        out.append(target(f"growth of {key}: linear (cpu slope ratio of each size's fastest run, sizes doubling)",
                          str(k), "<= 1.3",
                          None if k is None else k <= 1.3, "" if k is not None else "one size"))
    for work, by_size in s.get(PURE, {}).items():
        k = slope_ratio(by_size, _guests(s))
        out.append(target(f"growth of {work}, in-process: linear (slope ratio, fastest of the rounds, sizes interleaved)",
                          str(k), "<= 1.3", None if k is None else k <= 1.3, "" if k is not None else "one size"))
    ch = s[CHANGE]
    out += [target("no-op re-apply of the big topology <= 250 ms (whole process)", f"{med(big[NOOP]):.0f} ms "
                   f"(cpu {cpu(big[NOOP]) or 0:.0f})", "<= 250 ms", med(big[NOOP]) <= 250 if full else None, sub),
            target("no-op re-apply: zero writes", "none" if s[ZERO]["unchanged"] else str(s[ZERO].get("changed")),
                   "none", s[ZERO]["unchanged"]),
            target("small change: add one guest <= 300 ms (whole apply)", f"{med(ch[ADD]):.0f} ms", "<= 300 ms",
                   med(ch[ADD]) <= 300 if full else None, sub),
            target("small change: remove it <= 300 ms (whole apply)", f"{med(ch[REMOVE]):.0f} ms", "<= 300 ms",
                   med(ch[REMOVE]) <= 300 if full else None, sub),
            target("small change touches only that guest (tap, forward, lease file; dnsmasq same pid; connections survive)",
                   "; ".join(change_ok(ch)) or "yes", "yes", not change_ok(ch)),
            target("destroy of the big topology <= 2 s (whole process)", f"{med(big[DESTROY]):.0f} ms", "<= 2000 ms",
                   med(big[DESTROY]) <= 2000 if full else None, sub),
            target("peak RSS of apply on the big topology <= 120 MB", f"{big[RSS]['max']:.1f} MB", "<= 120 MB",
                   big[RSS]["max"] <= 120 if full else None, sub)]
    return out


def sanity(s: dict) -> list[str]:
    bad = []
    for k, v in s[SIZES].items():
        bad += [f"{k}, {key}: median {med(v[key])}" for key in (APPLY, NOOP, DESTROY) if not (med(v[key]) or 0) > 0]
        if not v[RSS]["max"] > 10:
            bad.append(f"{k}: peak RSS {v[RSS]['max']} MB: not measured?")
    for n, v in s[FORWARDS].items():
        bad += [f"forwards N={n}, {key}: median {med(v[key])}" for key in (KV_FW, KV_ONE, RAW_FW) if not (med(v[key]) or 0) > 0]
    if not s[ZERO]["unchanged"]:
        bad.append(f"the no-op re-apply wrote: {s[ZERO].get('changed')} {s[ZERO].get('events')}")
    bad += change_ok(s[CHANGE])
    return bad
