"""The one place kvmnet writes outside its own table: accept rules for its bridges in the
host's `filter FORWARD` chain, only when that chain's policy is DROP (as Docker sets it; Docker
27 sets the ip6tables FORWARD policy to DROP too, so the same is done there for IPv6).

nftables evaluates every base chain on a hook, and a drop anywhere wins, so an accept in
kvmnet's table cannot undo Docker's `FORWARD policy DROP`; an accept in that very chain can.
Each rule carries the comment "kvmnet <topology>" and is removed by exactly that match.
Written with the host's own `iptables` and `ip6tables` (nf_tables or legacy, whichever Docker
uses too).
"""

from __future__ import annotations

import subprocess

from ..errors import HostError


TOOLS = {4: "iptables", 6: "ip6tables"}


def _iptables(family: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([TOOLS[family], "-w", *args], capture_output=True, text=True)


def observe(ipv6: bool = False) -> dict:
    """{"policy": "DROP"|"ACCEPT"|None, "rules": [iptables -S lines that are kvmnet's]}, and with
    `ipv6` the same of ip6tables as "policy6" and "rules6"."""
    out = _observe(4)
    if ipv6:
        six = _observe(6)
        out.update(policy6=six["policy"], rules6=six["rules"])
    return out


def _observe(family: int) -> dict:
    try:
        res = _iptables(family, "-S", "FORWARD")
    except OSError:  # no iptables to run on this host (missing, not executable): no chain of it to coexist with
        return {"policy": None, "rules": []}
    if res.returncode != 0:
        return {"policy": None, "rules": []}
    policy, rules = None, []
    for line in res.stdout.splitlines():
        if line.startswith("-P FORWARD "):
            policy = line.split()[2]
        elif '--comment "kvmnet ' in line or "--comment kvmnet" in line:
            rules.append(line)
    return {"policy": policy, "rules": rules}


def run(step) -> None:
    bridge, family = step.args["bridge"], step.args.get("family", 4)
    for spec in step.args["specs"]:
        exists = _iptables(family, "-C", "FORWARD", *spec).returncode == 0
        if step.op == "fwaccept.add" and not exists:
            res = _iptables(family, "-I", "FORWARD", "1", *spec)
        elif step.op == "fwaccept.del" and exists:
            res = _iptables(family, "-D", "FORWARD", *spec)
        else:
            continue
        if res.returncode != 0:
            raise HostError(f"{TOOLS[family]} {step.op} for {bridge}: {res.stderr.strip()}")
