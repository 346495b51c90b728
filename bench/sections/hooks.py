"""Section 5: QEMU hook latency (tap attach/detach, network already up): kvmnet-ifup/ifdown against
the seed's qemu-ifup-NAT and a bare bash hook; what the hook imports (never netaddr)."""

from __future__ import annotations

from pathlib import Path

from bench.lib.common import IFDOWN, IFUP, KVMNET, NAT_TOML, PY, REPO, SEED_IFUP, CommandFailed, log, rotate, run, sh, stats, timed
from bench.lib.hostutil import kill_pidfile, master_of
from bench.lib.phaserun import importtime, kv_env
from bench.lib.report import Table, med, p95, ratio, target

NAME = "hooks"
TITLE = "5. QEMU hook latency (tap attach/detach, network already up)"
TAP = "kvbhk0"

UP, DOWN = "kvmnet-ifup", "kvmnet-ifdown"
SEED_UP = "seed qemu-ifup-NAT (bridge exists)"
BARE_UP, BARE_DOWN = "bare bash hook: ip link set master up", "bare bash hook: ip link set nomaster down"
PASS = "python -c pass"
UP_NOPYC = "kvmnet-ifup without cached bytecode (PYTHONDONTWRITEBYTECODE=1, no __pycache__)"
IMPORTTIME = "ifup_importtime"
TIMED = (UP, SEED_UP, BARE_UP, DOWN, BARE_DOWN, PASS, UP_NOPYC)  # table order
SEED_ENV = {"SEED_BRIDGE": "virbr1", "SEED_NETWORK": "192.168.123.0", "SEED_GATEWAY": "192.168.123.1",
            "SEED_DHCPRANGE": "192.168.123.2,192.168.123.254"}


def params(quick: bool, profiles: str | None) -> dict:
    return {"rounds": 3 if quick else 50}


def attached(to: str | None) -> None:
    if master_of(TAP) != to:
        raise CommandFailed(f"{TAP}: master {master_of(TAP)}, expected {to}")


def set_up(tmp: Path, st: Path, seed_env: dict) -> tuple[Path, Path]:
    """kvmnet's network (virbr0), applied; the seed's own network on virbr1, set up by the seed
    script itself on a first call, so every timed seed call takes its "bridge exists" path; the
    tap QEMU would have made; the bare hooks."""
    run([KVMNET, "apply", NAT_TOML], env=kv_env(st))
    run(["ip", "tuntap", "add", "dev", "kvbsd0", "mode", "tap"])
    run(["bash", SEED_IFUP, "kvbsd0"], env=seed_env)
    if not (Path(seed_env["SEED_RUNDIR"]) / "qemu-dhcp-virbr1.pid").exists():
        raise CommandFailed("the seed script did not start its dnsmasq")
    run(["ip", "tuntap", "add", "dev", TAP, "mode", "tap"])
    bare_up, bare_down = tmp / "bare-ifup", tmp / "bare-ifdown"
    bare_up.write_text('#!/bin/bash\nip link set "$1" master virbr0 up\n')
    bare_down.write_text('#!/bin/bash\nip link set "$1" nomaster down\n')
    for f in (bare_up, bare_down):
        f.chmod(0o755)
    return bare_up, bare_down


def one(v: str, s: dict, env_k: dict, seed_env: dict, bare: tuple[Path, Path]) -> None:
    if v == UP_NOPYC:  # this environment's default: no bytecode cache at all
        s[v].append(timed([IFUP, TAP], env=dict(env_k, PYTHONPYCACHEPREFIX="", PYTHONDONTWRITEBYTECODE="1")))
        attached("virbr0")
        run(["ip", "link", "set", TAP, "nomaster", "down"])
    elif v == UP:
        s[UP].append(timed([IFUP, TAP], env=env_k))
        attached("virbr0")
        s[DOWN].append(timed([IFDOWN, TAP], env=env_k))
        attached(None)
    elif v == SEED_UP:
        s[v].append(timed([SEED_IFUP, TAP], env=seed_env))
        attached("virbr1")
        run(["ip", "link", "set", TAP, "nomaster", "down"])
    elif v == BARE_UP:
        s[BARE_UP].append(timed([str(bare[0]), TAP]))
        attached("virbr0")
        s[BARE_DOWN].append(timed([str(bare[1]), TAP]))
        attached(None)
    else:
        s[PASS].append(timed([PY, "-c", "pass"]))


def measure(p: dict) -> dict:
    rounds, tmp = p["rounds"], Path(p["tmp"])
    st, seed_run = tmp / "state", tmp / "seed-run"
    seed_run.mkdir()
    env_k, seed_env = kv_env(st), dict(SEED_ENV, SEED_RUNDIR=str(seed_run))
    s = {k: [] for k in TIMED}
    try:
        bare = set_up(tmp, st, seed_env)
        for r in range(rounds):
            for v in rotate([UP, SEED_UP, BARE_UP, PASS, UP_NOPYC], r):
                one(v, s, env_k, seed_env, bare)
        log(f"hooks: {rounds} rounds done")
        imp = run([PY, "-X", "importtime", IFUP, TAP], env=env_k).stderr
        run(["ip", "link", "set", TAP, "nomaster", "down"])
    finally:
        kill_pidfile(seed_run / "qemu-dhcp-virbr1.pid", str(seed_run))
        run([KVMNET, "destroy", NAT_TOML], env=env_k, check=False)
        sh(f"ip link del {TAP}; ip link del kvbsd0; ip link del virbr1; nft delete table ip nat; true", check=False)
    return {"rounds": rounds, **{k: stats(v) for k, v in s.items()},
            "kvmnet_pycache_dir_present": (REPO / "kvmnet" / "__pycache__").is_dir(),
            IMPORTTIME: dict(importtime(imp), note="python -X importtime .venv/bin/kvmnet-ifup TAP (one run; the entry "
                                                   "script's own `import re` included)")}


# ----------------------------------------------------------------------------- reporting

def tables(s: dict) -> list[Table]:
    seed = med(s[SEED_UP])
    t = Table(f"{TITLE}, {s['rounds']} calls each", ["hook", "median ms", "p95 ms", "min ms", "cpu ms", "vs seed ifup"])
    for k in TIMED:
        t.add(k, med(s[k]), p95(s[k]), s[k]["min_ms"], s[k].get("cpu_median_ms"), ratio(med(s[k]), seed) if "down" not in k else "")
    imp = s[IMPORTTIME]
    t.notes.append(f"kvmnet-ifup imports: {imp['total_ms']:.1f} ms in all (-X importtime, one run); top: "
                   + ", ".join(f"{k} {v:.1f}" for k, v in list(imp["top_level_ms"].items())[:6])
                   + f"; netaddr {'IMPORTED' if imp['netaddr_imported'] else 'not imported'}")
    t.notes.append("the seed's ifup with the bridge up still appends a MASQUERADE rule (iptables-nft) and runs "
                   "`ps -ef | grep dnsmasq` on every call")
    return [t]


def targets(s: dict) -> list[dict]:
    up, seed, bare = med(s[UP]), med(s[SEED_UP]), med(s[BARE_UP])
    return [target("ifup hook median <= the seed script's median", f"{up:.1f} vs {seed:.1f} ms", "<=", up <= seed),
            target("ifup hook median within 50 ms of the bare bash hook", f"+{up - bare:.1f} ms ({up:.1f} vs {bare:.1f})",
                   "<= +50 ms", up - bare <= 50),
            target("ifup hook fast path does not import netaddr", "imported" if s[IMPORTTIME]["netaddr_imported"] else "no",
                   "no", not s[IMPORTTIME]["netaddr_imported"])]


def sanity(s: dict) -> list[str]:
    bad = [f"{k}: {s[k]['n']} runs, median {med(s[k])}" for k in TIMED
           if not (s[k]["n"] == s["rounds"] and (med(s[k]) or 0) > 0)]
    if not s[IMPORTTIME]["total_ms"] > 0:
        bad.append("no -X importtime output for kvmnet-ifup")
    if s[IMPORTTIME]["netaddr_imported"]:
        bad.append("kvmnet-ifup's fast path imports netaddr")
    return bad
