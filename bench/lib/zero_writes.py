"""Proof that a command wrote nothing: snapshots of everything a write would change, and
`nft monitor` / `ip monitor` running while it ran."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path

from bench.lib.common import run


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
