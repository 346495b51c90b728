"""The nftables backend: kvmnet's own tables (inet, and bridge for spoof protection), each
replaced in one `nft -f` transaction, observed through `nft -j list`."""

from __future__ import annotations

import json
import shutil
import subprocess

from ..errors import HostError


def nft_available() -> bool:
    """`nft` is installed (whether the kernel takes its rules shows at the first load, which
    fails the apply cleanly; a probe here would cost a process on every run)."""
    return shutil.which("nft") is not None


def load(text: str) -> None:
    res = subprocess.run(["nft", "-f", "-"], input=text, text=True, capture_output=True)
    if res.returncode != 0:
        raise HostError(f"nft rejected the ruleset: {res.stderr.strip()}")


def observe(table: str, bridge_table: bool = True) -> dict:
    """{"exists", "rules": {chain: n}, "elements": {map: n}, "comments": sorted set}."""
    res = subprocess.run(["nft", "-j", "list", "table", "inet", table], capture_output=True, text=True)
    if res.returncode != 0:
        return {"exists": False}
    rules: dict[str, int] = {}
    elements: dict[str, int] = {}
    comments = set()
    items = json.loads(res.stdout)["nftables"]
    if bridge_table:  # only topologies with spoof_protection have one; no process otherwise
        bridge = subprocess.run(["nft", "-j", "list", "table", "bridge", table], capture_output=True, text=True)
    if bridge_table and bridge.returncode == 0:
        items += [dict(rule=dict(i["rule"], chain="bridge:" + i["rule"]["chain"])) if "rule" in i else
                  dict(chain=dict(i["chain"], name="bridge:" + i["chain"]["name"])) if "chain" in i else i
                  for i in json.loads(bridge.stdout)["nftables"]]
    for item in items:
        if "chain" in item:
            rules.setdefault(item["chain"]["name"], 0)
        elif "rule" in item:
            rule = item["rule"]
            rules[rule["chain"]] = rules.get(rule["chain"], 0) + 1
            comments.add(rule.get("comment", ""))
        elif "map" in item:
            elements[item["map"]["name"]] = len(item["map"].get("elem", []))
    return {"exists": True, "rules": {k: v for k, v in rules.items() if v},
            "elements": elements, "comments": sorted(comments)}


def listing(table: str) -> str:
    """kvmnet's tables as loadable text: what a rollback of a changed ruleset restores. Read only
    when a change is planned, so a no-op apply costs one JSON listing."""
    text = ""
    for family in ("inet", "bridge"):
        res = subprocess.run(["nft", "list", "table", family, table], capture_output=True, text=True)
        if res.returncode == 0:
            text += res.stdout
    return text


def run(step) -> None:
    load(step.args["ruleset"] if step.op == "firewall.apply" else step.args["delete"])
