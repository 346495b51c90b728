"""The one place kvmnet writes outside its own table: accept rules for its bridges in the
host's `filter FORWARD` chain, only when that chain's policy is DROP (as Docker sets it).

nftables evaluates every base chain on a hook, and a drop anywhere wins, so an accept in
kvmnet's table cannot undo Docker's `FORWARD policy DROP`; an accept in that very chain can.
Each rule carries the comment "kvmnet <topology>" and is removed by exactly that match.
Written with the host's own `iptables` (nf_tables or legacy, whichever Docker uses too).
"""

from __future__ import annotations

import subprocess

from ..errors import HostError


def _iptables(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["iptables", "-w", *args], capture_output=True, text=True)


def observe() -> dict:
    """{"policy": "DROP"|"ACCEPT"|None, "rules": [iptables -S lines that are kvmnet's]}."""
    try:
        res = _iptables("-S", "FORWARD")
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
    bridge = step.args["bridge"]
    for spec in step.args["specs"]:
        exists = _iptables("-C", "FORWARD", *spec).returncode == 0
        if step.op == "fwaccept.add" and not exists:
            res = _iptables("-I", "FORWARD", "1", *spec)
        elif step.op == "fwaccept.del" and exists:
            res = _iptables("-D", "FORWARD", *spec)
        else:
            continue
        if res.returncode != 0:
            raise HostError(f"iptables {step.op} for {bridge}: {res.stderr.strip()}")
