"""Section 3: N port forwards (DNAT rules): kvmnet's firewall against per-rule iptables,
iptables-restore, python-iptables and raw `nft -f` of kvmnet's own ruleset; how each grows with N."""

from __future__ import annotations

import json
import math
from pathlib import Path

from bench.lib.common import KVMNET, LIB, PY, CommandFailed, log, rotate, run, sh, stats, timed
from bench.lib.phaserun import bucket_sum, kv_env, phase_summary, phases_run, profile_kvmnet
from bench.lib.report import Table, med, ratio, target
from bench.lib.topologies import fw_guest_ip, fw_toml

NAME = "forwards_scale"
TITLE = "3. Port forwards: N DNAT rules"
IPTC = str(LIB / "iptc_load.py")
HOST_ADDR = "203.0.113.1"  # the "host address" of the seed-style DNAT rules (-d); TEST-NET-3
SUBNET = "10.99.0.0/16"

APPLY, REAPPLY, DESTROY = "kvmnet apply (whole process)", "kvmnet re-apply (whole process)", "kvmnet destroy (whole process)"
PER_RULE = "iptables-nft, one process per rule"
RESTORE = "iptables-restore --noflush (nft backend), one process"
IPTC_PROC = "python-iptables (legacy), one commit, whole process"
IPTC_SPLIT = "python-iptables split (one run)"
NFT, NFT_AGAIN, NFT_DEL = "nft -f kvmnet's ruleset", "nft -f kvmnet's ruleset again (replace)", "nft delete table"
PHASES = "phases"
FW = "kvmnet firewall (from the phase driver)"
FW_LOAD = "load step (exec: firewall)"
FW_ALL = "all firewall work (render, nft list, load, verify)"
GROWTH = "forwards_growth"  # a top-level field of the results (not inside the section)


def params(quick: bool, profiles: str | None) -> dict:
    if quick:
        return {"reps": 1, "sizes": [100], "per_rule_full_max": 1000, "per_rule_big_reps": 1}
    return {"reps": 5, "sizes": [10, 100, 1000, 5000], "per_rule_full_max": 1000, "per_rule_big_reps": 1,
            "profiles": profiles}


def is_fw_bucket(k: str) -> bool:
    return k.endswith("exec: firewall") or "render nft" in k or "firewall (nft list)" in k or "choose backend" in k


def inputs(tmp: Path, n: int) -> dict:
    """The topology and the same N forwards for each baseline: kvmnet's rendered ruleset, a
    per-rule iptables script, an iptables-restore file and python-iptables' rule list."""
    from kvmnet import config, naming  # nothing here is timed: the worker may import kvmnet
    from kvmnet.render import nft

    name = f"fw{n}"
    f = {k: tmp / f"{name}{ext}" for k, ext in (("topo", ".toml"), ("ruleset", ".nft"), ("per_rule", "-per-rule.sh"),
                                                 ("restore", ".restore"), ("tsv", ".tsv"))}
    f["topo"].write_text(fw_toml(name, n))
    table = naming.nft_table(name)
    f["ruleset"].write_text(nft.render(config.load(str(f["topo"])), table).text)
    dnat = [(10000 + k, fw_guest_ip(k)) for k in range(n)]
    masq = f"-A POSTROUTING -s {SUBNET} ! -d {SUBNET} -j MASQUERADE"
    rule = "-A PREROUTING -p tcp -d {} --dport {} -j DNAT --to-destination {}:8080\n"
    f["per_rule"].write_text("#!/bin/bash\nset -e\n" + f"iptables-nft -t nat {masq}\n"
                             + "".join("iptables-nft -t nat " + rule.format(HOST_ADDR, p, ip) for p, ip in dnat))
    f["restore"].write_text("*nat\n" + masq + "\n" + "".join(rule.format(HOST_ADDR, p, ip) for p, ip in dnat) + "COMMIT\n")
    f["tsv"].write_text(f"masquerade {SUBNET}\n" + "".join(f"tcp {HOST_ADDR} {p} {ip} 8080\n" for p, ip in dnat))
    return {"files": f, "table": table, "n": n}


def reset_nat() -> None:
    sh("nft delete table ip nat 2>/dev/null; iptables-legacy -t nat -F 2>/dev/null; true")


def check_dnat(cmd: str, want: int) -> None:
    got = sum(1 for line in run(cmd.split()).stdout.splitlines() if "DNAT" in line)
    if got != want:
        raise CommandFailed(f"{cmd}: {got} DNAT rules, expected {want}")


def one(v: str, r: int, x: dict, s: dict, ph: dict, st: Path, tmp: Path) -> None:
    """One variant of one repetition. kvmnet runs through the phase driver only (the same
    kvmnet.cli.main code path, one process per command): its process wall is the command's, and
    its buckets isolate the firewall; sections 1 and 2 show the driver's overhead is noise."""
    f, n = x["files"], x["n"]
    if v == "phases":
        for what in ("apply", "reapply", "destroy"):
            args = ["destroy" if what == "destroy" else "apply", str(f["topo"])]
            ph[what].append(phases_run(args, st, tmp / "ph.json")[1])
        if ph["reapply"][-1]["ops"]:
            raise CommandFailed(f"re-apply ran steps: {ph['reapply'][-1]['ops']}")
    elif v in (PER_RULE, RESTORE, IPTC_PROC):
        argv = {PER_RULE: ["bash", str(f["per_rule"])], RESTORE: ["iptables-nft-restore", "--noflush", str(f["restore"])],
                IPTC_PROC: [PY, IPTC, str(f["tsv"])]}[v]
        s[v].append(timed(argv, timeout=900))
        if r == 0:
            check_dnat(f"iptables-{'legacy' if v == IPTC_PROC else 'nft'} -t nat -S PREROUTING", n)
        reset_nat()
    elif v == NFT:
        s[NFT].append(timed(["nft", "-f", str(f["ruleset"])]))
        s[NFT_AGAIN].append(timed(["nft", "-f", str(f["ruleset"])]))
        s[NFT_DEL].append(timed(["nft", "delete", "table", "inet", x["table"]]))


def one_size(p: dict, n: int) -> dict:
    tmp = Path(p["tmp"])
    st = tmp / "state"
    x = inputs(tmp, n)
    per_rule_reps = p["reps"] if n <= p["per_rule_full_max"] else p["per_rule_big_reps"]
    s = {k: [] for k in (PER_RULE, RESTORE, IPTC_PROC, NFT, NFT_AGAIN, NFT_DEL)}
    ph = {"apply": [], "reapply": [], "destroy": []}
    for r in range(p["reps"]):
        for v in rotate(["phases", PER_RULE, RESTORE, IPTC_PROC, NFT], r):
            if v != PER_RULE or r < per_rule_reps:
                one(v, r, x, s, ph, st, tmp)
        log(f"forwards_scale: N={n} rep {r + 1}/{p['reps']} done")
    iptc_split = json.loads(run([PY, IPTC, str(x["files"]["tsv"])]).stdout)  # its own import/build/commit split
    reset_nat()
    if p.get("profiles") and n == max(p["sizes"]):
        profile_kvmnet(["apply", str(x["files"]["topo"])], st, tmp, Path(p["profiles"]) / f"forwards-{n}-apply.txt",
                       f"kvmnet apply ({n} port forwards, cold)")
        run([KVMNET, "destroy", str(x["files"]["topo"])], env=kv_env(st))
    size = {APPLY: stats([y["wall_s"] for y in ph["apply"]]), REAPPLY: stats([y["wall_s"] for y in ph["reapply"]]),
            DESTROY: stats([y["wall_s"] for y in ph["destroy"]]), RESTORE: stats(s[RESTORE]),
            IPTC_PROC: stats(s[IPTC_PROC]),
            IPTC_SPLIT: {k: round(v * 1000, 3) if k.endswith("_s") else v for k, v in iptc_split.items()},
            NFT: stats(s[NFT]), NFT_AGAIN: stats(s[NFT_AGAIN]), NFT_DEL: stats(s[NFT_DEL]),
            PHASES: {k: phase_summary(v) for k, v in ph.items()}}
    if s[PER_RULE]:
        size[PER_RULE] = stats(s[PER_RULE], None if len(s[PER_RULE]) >= 5 else f"only {len(s[PER_RULE])} run(s)")
    size[FW] = {what: {FW_LOAD: stats([bucket_sum(y, lambda k: k.endswith("exec: firewall")) for y in runs]),
                       FW_ALL: stats([bucket_sum(y, is_fw_bucket) for y in runs])} for what, runs in ph.items()}
    return size


def extrapolate(sizes: dict) -> None:
    """Per-rule iptables at sizes too slow to run: extrapolated from the two largest measured (said so)."""
    measured = [k for k in sizes if PER_RULE in sizes[k]]
    if len(measured) < 2:
        return
    a, b = measured[-2], measured[-1]
    ta, tb = sizes[a][PER_RULE]["median_ms"], sizes[b][PER_RULE]["median_ms"]
    expo = math.log(tb / ta) / math.log(int(b) / int(a))
    for k in sizes:
        if k not in measured:
            sizes[k][PER_RULE] = {"n": 0, "median_ms": round(tb * (int(k) / int(b)) ** expo, 1), "p95_ms": None,
                                  "samples_ms": [], "note": f"extrapolated from N={a},{b} (time ~ N^{expo:.2f}), not measured"}


def measure(p: dict) -> dict:
    out = {"sizes": {str(n): one_size(p, n) for n in p["sizes"]},
           "iptables_variant": "iptables-nft (iptables v1.8 nf_tables backend: this machine's `iptables`)"}
    extrapolate(out["sizes"])
    return out


# ----------------------------------------------------------------------------- reporting

def fw(n: dict, what: str, k: str):
    return med(n[FW][what][k])


def tables(s: dict) -> list[Table]:
    sizes = list(s["sizes"])
    t = Table(TITLE + " (medians, ms)", ["", *[f"N={n}" for n in sizes]])
    rows = [
        (APPLY, lambda n: med(n[APPLY])), (REAPPLY, lambda n: med(n[REAPPLY])), (DESTROY, lambda n: med(n[DESTROY])),
        ("kvmnet firewall, apply: nft -f step", lambda n: fw(n, "apply", FW_LOAD)),
        ("kvmnet firewall, apply: all fw work", lambda n: fw(n, "apply", FW_ALL)),
        ("kvmnet firewall, re-apply: all fw work", lambda n: fw(n, "reapply", FW_ALL)),
        ("kvmnet firewall, destroy: nft step", lambda n: fw(n, "destroy", FW_LOAD)),
        ("kvmnet config parse+validate (apply)", lambda n: n[PHASES]["apply"]["phases_median_ms"].get("config")),
        (NFT, lambda n: med(n[NFT])), ("nft -f again (replace)", lambda n: med(n[NFT_AGAIN])),
        (NFT_DEL, lambda n: med(n[NFT_DEL])), (PER_RULE, lambda n: med(n.get(PER_RULE))),
        ("iptables-nft-restore --noflush", lambda n: med(n[RESTORE])),
        ("python-iptables, one commit (process)", lambda n: med(n[IPTC_PROC])),
        ("  of which commit()", lambda n: n[IPTC_SPLIT].get("commit_s")),
        ("ratio: kvmnet fw all / nft -f", lambda n: ratio(fw(n, "apply", FW_ALL), med(n[NFT]))),
        ("ratio: kvmnet nft -f step / nft -f", lambda n: ratio(fw(n, "apply", FW_LOAD), med(n[NFT]))),
        ("ratio: per-rule iptables / kvmnet fw all", lambda n: ratio(med(n.get(PER_RULE)), fw(n, "apply", FW_ALL))),
    ]
    for label, get in rows:
        t.add(label, *[get(s["sizes"][n]) for n in sizes])
    t.notes += [f"per-rule iptables at N={n}: {s['sizes'][n][PER_RULE]['note']}" for n in sizes
                if s["sizes"][n].get(PER_RULE, {}).get("note")]
    t.notes += [
        f"iptables baselines: N x `-t nat -A PREROUTING -p tcp -d {HOST_ADDR} --dport P -j DNAT --to-destination G:8080`"
        " + one MASQUERADE (the seed's form), iptables-nft (this machine's `iptables`); python-iptables writes legacy xtables",
        "nft -f: kvmnet's own rendered ruleset (nft.render(topo, table).text: map of N elements + filter/nat chains)",
        "kvmnet fw all = render + `nft list` observe + choose backend + the nft -f step + the verifying re-observe",
        "kvmnet runs here go through the phase driver (kvmnet.cli.main in one process per command, functions "
        "wrapped): its process wall is the command's; sections 1-2 time both ways",
    ]
    g = growth(s)
    if g:
        t.notes += g["notes"]
    return [t]


def series(s: dict, sizes: list[str]) -> dict:
    def work(n):  # kvmnet apply in-process time without imports (no interpreter start, no imports)
        ph = s["sizes"][n][PHASES]["apply"]
        return ph["in_process_total"]["median_ms"] - ph["phases_median_ms"].get("imports", 0.0)

    return {
        APPLY: [med(s["sizes"][n][APPLY]) for n in sizes],
        "kvmnet apply, in-process work after imports": [work(n) for n in sizes],
        "kvmnet firewall, all fw work": [fw(s["sizes"][n], "apply", FW_ALL) for n in sizes],
        "kvmnet config parse+validate": [s["sizes"][n][PHASES]["apply"]["phases_median_ms"].get("config", 0) for n in sizes],
        "nft -f": [med(s["sizes"][n][NFT]) for n in sizes],
        "iptables-nft per rule": [med(s["sizes"][n].get(PER_RULE)) for n in sizes],
    }


def spread(d) -> float:
    """How far apart repeated runs land (p95 - min), if known."""
    return (d["p95_ms"] - d["min_ms"]) if isinstance(d, dict) and d.get("p95_ms") is not None else 0.0


def growth(s: dict) -> dict | None:
    """How each series grows with N. Small-N times are mostly constant cost plus noise, so the
    verdict uses the N-dependent part, t(N) - t(N_min), between the two largest sizes: its
    exponent k in t ~ N^k (1 = linear; > 1.25 is called faster than linear)."""
    sizes = list(s["sizes"])
    if len(sizes) < 3:
        return None
    noise = {APPLY: spread(s["sizes"][sizes[0]][APPLY]), "nft -f": spread(s["sizes"][sizes[0]][NFT])}
    out = {"marginal_us_per_forward": {}, "exponent": {}, "linear": {}, "notes": []}
    ns = [int(n) for n in sizes]
    for label, ys in series(s, sizes).items():
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


def top_level(s: dict) -> dict:
    """Fields of the results outside the section: the growth verdicts."""
    g = growth(s)
    return {GROWTH: {k: v for k, v in g.items() if k != "notes"}} if g else {}


def targets(s: dict) -> list[dict]:
    out = []
    if "1000" in s["sizes"]:
        n = s["sizes"]["1000"]
        allw, load, raw, per = fw(n, "apply", FW_ALL), fw(n, "apply", FW_LOAD), med(n[NFT]), med(n.get(PER_RULE))
        out += [target("1000 forwards: kvmnet firewall apply <= 3x raw nft -f (all firewall work)",
                       f"{allw / raw:.2f}x ({allw:.1f} vs {raw:.1f} ms)", "<= 3x", allw <= 3 * raw),
                target("1000 forwards: kvmnet firewall apply <= 3x raw nft -f (nft -f step only)",
                       f"{load / raw:.2f}x ({load:.1f} vs {raw:.1f} ms)", "<= 3x", load <= 3 * raw)]
        if per:
            out += [target("1000 forwards: >= 30x faster than per-rule iptables processes (all firewall work)",
                           f"{per / allw:.1f}x ({per:.0f} vs {allw:.1f} ms)", ">= 30x", per >= 30 * allw),
                    target("1000 forwards: >= 30x faster than per-rule iptables processes (nft -f step only)",
                           f"{per / load:.1f}x ({per:.0f} vs {load:.1f} ms)", ">= 30x", per >= 30 * load)]
    else:
        out.append(target("1000 forwards targets", "not measured", "", None))
    if "5000" in s["sizes"]:
        n = s["sizes"]["5000"]
        allw, whole = fw(n, "apply", FW_ALL), med(n[APPLY])
        out += [target("5000 forwards well under a second: kvmnet firewall work", f"{allw:.0f} ms", "< 500 ms", allw < 500),
                target("5000 forwards well under a second: whole `kvmnet apply`", f"{whole:.0f} ms", "< 1000 ms", whole < 1000)]
    else:
        out.append(target("5000 forwards", "not measured", "", None))
    return out


def sanity(s: dict) -> list[str]:
    bad = []
    for n, size in s["sizes"].items():
        for k in (APPLY, REAPPLY, DESTROY, NFT, RESTORE, IPTC_PROC, PER_RULE):
            if not (med(size.get(k)) or 0) > 0:
                bad.append(f"N={n}, {k}: median {med(size.get(k))}")
        for what in ("apply", "destroy"):
            if not fw(size, what, FW_LOAD) > 0:
                bad.append(f"N={n}: kvmnet {what} has no firewall step time: not instrumented?")
        if size[PHASES]["reapply"]["ops"]:
            bad.append(f"N={n}: re-apply ran steps {size[PHASES]['reapply']['ops']}")
    return bad
