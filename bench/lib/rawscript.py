"""kvmnet's own plan as the shell commands a person would type: the "raw tools" baseline."""

from __future__ import annotations

from pathlib import Path

from bench.lib.common import CommandFailed


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
