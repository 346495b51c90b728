"""Section 4: N taps created on a bridge, then deleted: kvmnet against `ip` per operation,
`ip -batch` and `ip link del group`."""

from __future__ import annotations

import time
from pathlib import Path

from bench.lib.common import KVMNET, CommandFailed, log, rotate, run, stats, timed
from bench.lib.hostutil import link_count
from bench.lib.phaserun import bucket_sum, kv_env, phase_summary, phases_run, profile_kvmnet
from bench.lib.report import Table, med, ratio, target
from bench.lib.topologies import taps_toml

NAME = "taps_scale"
TITLE = "4. Taps: N created on a bridge, then deleted"
GROUP = 4242  # the link group of the baseline's taps
BRIDGE = "kvbipbr0"

APPLY, DESTROY = "kvmnet apply (whole process)", "kvmnet destroy (whole process)"  # the `kvmnet` command
PH_APPLY, PH_DESTROY = "kvmnet apply via the phase driver", "kvmnet destroy via the phase driver"
OP_CREATE, OP_DELETE = "ip, one process per operation: create", "ip, one process per operation: delete"
B_CREATE, B_DELETE = "ip -batch: create", "ip -batch: delete (one link del per tap)"
G_CREATE, G_DELETE = "ip -batch create, then ip link del group", "ip link del group (+ bridge)"
PHASES = "phases"
NETLINK = "kvmnet netlink steps (from the phase driver)"
PER_TAP = "kvmnet per tap (ms)"
PT_CREATE_NL, PT_CREATE = "create, netlink steps", "create, whole apply"
PT_DELETE_NL, PT_DELETE = "delete, netlink steps", "delete, whole destroy"


def params(quick: bool, profiles: str | None) -> dict:
    if quick:
        return {"reps": 1, "sizes": [10], "perlink_full_max": 100, "perlink_big_reps": 1,
                "perop_full_max": 1000, "perop_big_reps": 1}
    return {"reps": 5, "sizes": [10, 100, 1000], "perlink_full_max": 100, "perlink_big_reps": 1,
            "perop_full_max": 100, "perop_big_reps": 2, "profiles": profiles}


def scripts(tmp: Path, name: str, n: int) -> dict:
    """The same bridge and taps as `ip` commands: one process each, and as `ip -batch` files."""
    taps = [f"kvbt{i}" for i in range(n)]
    create = f"link add {BRIDGE} type bridge\nlink set {BRIDGE} up\n" + "".join(
        f"tuntap add dev {t} mode tap vnet_hdr\nlink set {t} master {BRIDGE} group {GROUP} up\n" for t in taps)
    delete = "".join(f"link del {t}\n" for t in taps) + f"link del {BRIDGE}\n"
    out = {k: tmp / f"{name}-{k.replace('_', '.')}" for k in ("create_sh", "delete_sh", "create_batch", "delete_batch")}
    out["create_sh"].write_text("#!/bin/bash\nset -e\n" + "".join(f"ip {line}\n" for line in create.splitlines()))
    out["delete_sh"].write_text("#!/bin/bash\nset -e\n" + "".join(f"ip {line}\n" for line in delete.splitlines()))
    out["create_batch"].write_text(create)
    out["delete_batch"].write_text(delete)
    return out


class Taps:
    """One size: every variant creates the bridge and N taps, checks, and removes them."""

    def __init__(self, p: dict, n: int):
        self.tmp, self.n = Path(p["tmp"]), n
        self.st = self.tmp / "state"
        self.base = link_count()
        self.topo = self.tmp / f"taps{n}.toml"
        self.topo.write_text(taps_toml(f"taps{n}", n))
        self.files = scripts(self.tmp, f"taps{n}", n)
        self.perlink_reps = p["reps"] if n <= p["perlink_full_max"] else p["perlink_big_reps"]
        self.perop_reps = p["reps"] if n <= p["perop_full_max"] else p["perop_big_reps"]
        self.s = {k: [] for k in (OP_CREATE, OP_DELETE, B_CREATE, B_DELETE, G_CREATE, G_DELETE)}
        self.ph = {"apply": [], "destroy": []}
        self.cli = {"apply": [], "destroy": []}

    def created(self) -> None:
        if link_count() != self.base + self.n + 1:
            raise CommandFailed(f"expected {self.n} taps and a bridge, found {link_count() - self.base} links")

    def gone(self) -> None:
        if link_count() != self.base:
            raise CommandFailed(f"{link_count() - self.base} links left after the teardown")

    def group_teardown(self) -> None:
        run(["ip", "link", "del", "group", str(GROUP)])
        run(["ip", "link", "del", BRIDGE])

    def ip_variant(self, r: int, create: list[str], delete: list[str], create_key: str, delete_key: str) -> None:
        self.s[create_key].append(timed(create, timeout=900))
        self.created()
        if r < self.perlink_reps:
            self.s[delete_key].append(timed(delete, timeout=900))
        else:
            self.group_teardown()
        self.gone()

    def one(self, v: str, r: int) -> None:
        f = self.files
        if v == "phases":
            self.ph["apply"].append(phases_run(["apply", str(self.topo)], self.st, self.tmp / "ph.json")[1])
            self.created()
            self.ph["destroy"].append(phases_run(["destroy", str(self.topo)], self.st, self.tmp / "ph.json")[1])
            self.gone()
        elif v == "cli":  # the `kvmnet` command as users run it (its netlink worker started first)
            self.cli["apply"].append(timed([KVMNET, "apply", str(self.topo)], env=kv_env(self.st), expect="applied"))
            self.created()
            self.cli["destroy"].append(timed([KVMNET, "destroy", str(self.topo)], env=kv_env(self.st)))
            self.gone()
        elif v == "perop" and r < self.perop_reps:
            self.ip_variant(r, ["bash", str(f["create_sh"])], ["bash", str(f["delete_sh"])], OP_CREATE, OP_DELETE)
        elif v == "batch":
            self.ip_variant(r, ["ip", "-batch", str(f["create_batch"])], ["ip", "-batch", str(f["delete_batch"])],
                            B_CREATE, B_DELETE)
        elif v == "group":
            self.s[G_CREATE].append(timed(["ip", "-batch", str(f["create_batch"])], timeout=900))
            self.created()
            t0 = time.perf_counter()
            self.group_teardown()
            self.s[G_DELETE].append(time.perf_counter() - t0)
            self.gone()


def few(xs: list) -> str | None:
    return None if len(xs) >= 5 else f"only {len(xs)} run(s)"


def one_size(p: dict, n: int) -> dict:
    t = Taps(p, n)
    for r in range(p["reps"]):
        for v in rotate(["phases", "cli", "perop", "batch", "group"], r):
            t.one(v, r)
        log(f"taps_scale: N={n} rep {r + 1}/{p['reps']} done")
    if p.get("profiles") and n == max(p["sizes"]):
        for what in ("apply", "destroy"):
            profile_kvmnet([what, str(t.topo)], t.st, t.tmp, Path(p["profiles"]) / f"taps-{n}-{what}.txt",
                           f"kvmnet {what} ({n} taps on one bridge)")
    size = {APPLY: stats(t.cli["apply"]), DESTROY: stats(t.cli["destroy"]),
            PH_APPLY: stats([x["wall_s"] for x in t.ph["apply"]]), PH_DESTROY: stats([x["wall_s"] for x in t.ph["destroy"]])}
    size.update({k: stats(v, few(v) if k in (OP_CREATE, OP_DELETE, B_DELETE) else None)
                 for k, v in t.s.items() if v})
    size[PHASES] = {k: phase_summary(v) for k, v in t.ph.items()}
    nl = {what: stats([bucket_sum(x, lambda k: k == "exec: netlink") for x in t.ph[what]]) for what in t.ph}
    size[NETLINK] = nl
    size[PER_TAP] = {PT_CREATE_NL: round(nl["apply"]["median_ms"] / n, 3), PT_CREATE: round(med(size[APPLY]) / n, 3),
                     PT_DELETE_NL: round(nl["destroy"]["median_ms"] / n, 3), PT_DELETE: round(med(size[DESTROY]) / n, 3)}
    return size


def measure(p: dict) -> dict:
    return {"sizes": {str(n): one_size(p, n) for n in p["sizes"]}}


# ----------------------------------------------------------------------------- reporting

def tables(s: dict) -> list[Table]:
    sizes = list(s["sizes"])
    t = Table(TITLE + " (medians, ms)", ["", *[f"N={n}" for n in sizes]])
    rows = [
        (APPLY, lambda n: med(n[APPLY])), (PH_APPLY, lambda n: med(n.get(PH_APPLY))),
        ("kvmnet apply: netlink steps", lambda n: med(n[NETLINK]["apply"])),
        (OP_CREATE, lambda n: med(n.get(OP_CREATE))), (B_CREATE, lambda n: med(n[B_CREATE])),
        (DESTROY, lambda n: med(n[DESTROY])), (PH_DESTROY, lambda n: med(n.get(PH_DESTROY))),
        ("kvmnet destroy: netlink steps", lambda n: med(n[NETLINK]["destroy"])),
        (OP_DELETE, lambda n: med(n.get(OP_DELETE))),
        ("ip -batch: delete (link del per tap)", lambda n: med(n.get(B_DELETE))),
        ("ip link del group (one request)", lambda n: med(n[G_DELETE])),
        ("kvmnet per tap: create, netlink", lambda n: n[PER_TAP][PT_CREATE_NL]),
        ("kvmnet per tap: create, whole apply", lambda n: n[PER_TAP][PT_CREATE]),
        ("kvmnet per tap: delete, netlink", lambda n: n[PER_TAP][PT_DELETE_NL]),
        ("kvmnet per tap: delete, whole destroy", lambda n: n[PER_TAP][PT_DELETE]),
        ("ratio: kvmnet netlink create / ip -batch", lambda n: ratio(med(n[NETLINK]["apply"]), med(n[B_CREATE]))),
        ("ratio: kvmnet apply / ip -batch", lambda n: ratio(med(n[APPLY]), med(n[B_CREATE]))),
    ]
    for label, get in rows:
        t.add(label, *[get(s["sizes"][n]) for n in sizes])
    t.notes += [f"N={n}, {k}: {v['note']}" for n in sizes for k, v in s["sizes"][n].items()
                if isinstance(v, dict) and v.get("note")]
    t.notes += ["whole process: the `kvmnet` command; its netlink steps come from runs through the phase driver "
                "(one process per command, as in section 3: kvmnet's functions wrapped, and no netlink worker "
                "started before the imports, so pyroute2 loads when the first tap is made)",
                "kvmnet: an isolated network (bridge, no address, no dnsmasq) with N guests of one NIC; "
                "ip: the same bridge + `tuntap add ... vnet_hdr` + `link set T master BR group G up` per tap",
                "deleting links one request each is kernel-bound (~20 ms per link here); a link group goes in one request",
                f"kvmnet destroy steps at N={sizes[-1]}: {s['sizes'][sizes[-1]][PHASES]['destroy']['ops']}"]
    return [t]


def targets(s: dict) -> list[dict]:
    if "1000" not in s["sizes"]:
        return [target("1000 taps targets", "not measured", "", None)]
    n = s["sizes"]["1000"]
    nl, whole, batch = med(n[NETLINK]["apply"]), med(n[APPLY]), med(n[B_CREATE])
    dnl, dwhole = med(n[NETLINK]["destroy"]), med(n[DESTROY])
    return [
        target("1000 taps up <= 2x ip -batch (kvmnet netlink steps)", f"{nl / batch:.2f}x ({nl:.0f} vs {batch:.0f} ms)",
               "<= 2x", nl <= 2 * batch),
        target("1000 taps up <= 2x ip -batch (whole kvmnet apply)", f"{whole / batch:.2f}x ({whole:.0f} vs {batch:.0f} ms)",
               "<= 2x", whole <= 2 * batch),
        target("1000 taps torn down in <= 1 s (kvmnet netlink steps)", f"{dnl:.0f} ms", "<= 1000 ms", dnl <= 1000),
        target("1000 taps torn down in <= 1 s (whole kvmnet destroy)", f"{dwhole:.0f} ms", "<= 1000 ms", dwhole <= 1000),
    ]


def sanity(s: dict) -> list[str]:
    bad = []
    for n, size in s["sizes"].items():
        bad += [f"N={n}, {k}: median {med(size.get(k))}" for k in (APPLY, DESTROY, OP_CREATE, B_CREATE, G_DELETE)
                if not (med(size.get(k)) or 0) > 0]
        bad += [f"N={n}, per tap {k}: {v}" for k, v in size[PER_TAP].items() if not v > 0]
    return bad
