"""kvmnet's firewall holds exactly what kvmnet wrote (issue 11, items 6 and 7), on both backends.

Drift that keeps every rule count and every `kvmnet <hash>` comment (a policy-drop chain added
to kvmnet's table, a port forward re-pointed at another guest, a reject turned into an accept)
is reported by `check` and repaired by `apply`; a table or chains of kvmnet's name that kvmnet
did not create are a conflict (exit 2, nothing changed), like a foreign bridge.
"""

import json
import re
import shlex
from pathlib import Path

import pytest

from helpers.netns import snapshot_diff

from kvmnet import config
from kvmnet.render import iptables as ipt

pytestmark = pytest.mark.root
TOPOLOGY = Path(__file__).resolve().parents[1] / "data" / "topologies" / "nat-lab.toml"
TABLE = "kvmnet_natlab"
KEY = f"firewall:nftables:{TABLE}"
PREFIX = ipt.render(config.load(str(TOPOLOGY))).name  # KN-natlab


def _handle_of(netns, chain: str, pattern: str) -> tuple[int, str]:
    """(handle, comment) of the first rule of `chain` in kvmnet's table whose text matches."""
    listing = netns.run("nft", "-a", "list", "chain", "inet", TABLE, chain).stdout
    for line in listing.splitlines():
        if re.search(pattern, line):
            return int(line.rsplit("# handle ", 1)[1]), re.search(r'comment "([^"]*)"', line).group(1)
    raise AssertionError(f"no rule like {pattern!r} in {listing}")


def _still(netns, before: dict) -> None:
    """Nothing changed since `before` (a snapshot), but link flags the kernel settles by itself
    (a fresh tap's NO-CARRIER)."""
    after = netns.snapshot()
    for snap in (before, after):
        snap["links"] = [link[:-1] for link in snap["links"]]
    assert after == before, snapshot_diff(before, after)


def _drift_is_reported_and_repaired(netns, key: str, *apply_args: str) -> None:
    check = netns.kvmnet("check", str(TOPOLOGY))
    assert check.returncode == 1 and key in check.stdout, check.stdout + check.stderr
    res = netns.kvmnet("apply", *apply_args, str(TOPOLOGY))
    assert res.returncode == 0, res.stderr
    check = netns.kvmnet("check", str(TOPOLOGY))
    assert check.returncode == 0, check.stdout + check.stderr


# ---- nftables

def _policy_drop_chain(netns):
    netns.run("nft", "add chain inet kvmnet_natlab sneaky { type filter hook forward priority 10; policy drop; }")


def _repointed_forward(netns):
    netns.run("nft", "delete element inet kvmnet_natlab fwd_any { tcp . 8080 }")
    netns.run("nft", "add element inet kvmnet_natlab fwd_any { tcp . 8080 : 192.168.122.66 . 22 }")


def _reject_made_accept(netns):
    handle, comment = _handle_of(netns, "forward", r'oifname "virbr0" reject')
    netns.run("nft", f'replace rule inet kvmnet_natlab forward handle {handle} oifname "virbr0" accept comment "{comment}"')


@pytest.mark.parametrize("tamper", [_policy_drop_chain, _repointed_forward, _reject_made_accept],
                         ids=["policy-drop-chain", "repointed-forward", "reject-made-accept"])
def test_nft_content_drift_is_reported_and_repaired(netns, tamper):
    assert netns.kvmnet("apply", str(TOPOLOGY)).returncode == 0
    loaded = netns.run("nft", "list", "table", "inet", TABLE).stdout
    tamper(netns)
    assert netns.run("nft", "list", "table", "inet", TABLE).stdout != loaded
    _drift_is_reported_and_repaired(netns, KEY)
    assert netns.run("nft", "list", "table", "inet", TABLE).stdout == loaded
    netns.kvmnet("destroy", str(TOPOLOGY))


def test_nft_noop_reapply_and_rollback_keep_the_content_check(netns, tmp_path):
    assert netns.kvmnet("apply", str(TOPOLOGY)).returncode == 0
    again = netns.kvmnet("apply", str(TOPOLOGY))
    assert again.returncode == 0 and "nothing changed" in again.stdout, again.stdout
    ruleset = netns.run("nft", "list", "ruleset").stdout
    changed = tmp_path / "natlab.toml"
    changed.write_text(TOPOLOGY.read_text() + '\n[[networks.default.forwards]]\nhost_port = 2222\nguest = "web"\nguest_port = 22\n')
    res = netns.kvmnet("apply", "--replace", str(changed), env={"KVMNET_FAULT_AT": "0+"})  # fail right after the load
    assert res.returncode == 1 and "rolled back" in res.stderr, res.stderr
    assert netns.run("nft", "list", "ruleset").stdout == ruleset
    assert netns.kvmnet("check", str(TOPOLOGY)).returncode == 0  # the restored table is the recorded one
    _reject_made_accept(netns)  # and the record still tells a tampered table apart
    _drift_is_reported_and_repaired(netns, KEY)
    netns.kvmnet("destroy", str(TOPOLOGY))


FOREIGN_INET = 'table inet kvmnet_natlab {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n' \
               '\t\ttcp dport 22 accept comment "sshd"\n\t}\n}\n'
FOREIGN_BRIDGE = FOREIGN_INET.replace("table inet", "table bridge").replace("hook input", "hook prerouting")


@pytest.mark.parametrize("family", ["inet", "bridge"])
def test_foreign_nft_table_of_kvmnets_name_is_a_conflict(netns, family):
    netns.run("nft", "-f", "-", input=FOREIGN_INET if family == "inet" else FOREIGN_BRIDGE)
    before = netns.snapshot()
    for verb in ("plan", "apply"):
        res = netns.kvmnet(verb, str(TOPOLOGY))
        assert res.returncode == 2, (verb, res.stdout, res.stderr)
        assert (f"{TOPOLOGY}:5: networks.default: table {family} {TABLE} already exists on this host "
                "and kvmnet has no record of creating it") in res.stderr, res.stderr
        assert "Traceback" not in res.stderr
    _still(netns, before)


def test_table_recorded_as_kvmnets_but_holding_foreign_rules_is_a_conflict(netns):
    assert netns.kvmnet("apply", str(TOPOLOGY)).returncode == 0
    netns.run("nft", "delete", "table", "inet", TABLE)
    netns.run("nft", "-f", "-", input=FOREIGN_INET)
    before = netns.snapshot()
    res = netns.kvmnet("apply", str(TOPOLOGY))
    assert res.returncode == 2, res.stderr
    assert (f"{TOPOLOGY}:5: networks.default: table inet {TABLE} holds rules kvmnet did not write "
            "(none carries kvmnet's comment)") in res.stderr, res.stderr
    _still(netns, before)
    netns.run("nft", "delete", "table", "inet", TABLE)
    assert netns.kvmnet("destroy", str(TOPOLOGY)).returncode == 0


# ---- iptables (legacy xtables)

def _rule_index(netns, chain: str, table: str, pattern: str) -> tuple[int, list[str]]:
    """(1-based position, argv) of the first rule of `chain` whose save line matches."""
    lines = [l for l in netns.run("iptables-legacy-save", "-t", table).stdout.splitlines() if l.startswith(f"-A {chain} ")]
    for i, line in enumerate(lines, 1):
        if re.search(pattern, line):
            return i, shlex.split(line)[2:]
    raise AssertionError(f"no rule like {pattern!r} in {lines}")


def _ipt_reject_made_accept(netns):
    chain = f"{PREFIX}-FWD"
    pos, argv = _rule_index(netns, chain, "filter", r"-o virbr0 .*-j REJECT")
    argv = argv[:argv.index("-j")] + ["-j", "ACCEPT"]  # same match, same kvmnet comment
    netns.run("iptables-legacy", "-R", chain, str(pos), *argv)


def _ipt_repointed_forward(netns):
    chain = f"{PREFIX}-PRE"
    pos, argv = _rule_index(netns, chain, "nat", r"--dport 8080 .*--to-destination 192\.168\.122\.10:80")
    argv = [a.replace("192.168.122.10:80", "192.168.122.66:22") for a in argv]
    netns.run("iptables-legacy", "-t", "nat", "-R", chain, str(pos), *argv)


def _ipt_jumps_out_of_rank(netns):
    """The outbound accepts' jump moved above the inbound rejects' (an admin's `iptables -I`):
    every chain and rule still as kvmnet wrote it; only their order in FORWARD is wrong."""
    jump = ["-m", "comment", "--comment", "kvmnet", "-j", f"{PREFIX}-FWO"]
    netns.run("iptables-legacy", "-D", "FORWARD", *jump)
    netns.run("iptables-legacy", "-I", "FORWARD", "1", *jump)


def _rules(netns) -> list[str]:
    """iptables-legacy-save without date comments and the counters traffic moves."""
    return [re.sub(r" \[\d+:\d+\]$", "", l) for l in netns.run("iptables-legacy-save").stdout.splitlines()
            if not l.startswith("#")]


@pytest.mark.parametrize("tamper", [_ipt_reject_made_accept, _ipt_repointed_forward, _ipt_jumps_out_of_rank],
                         ids=["reject-made-accept", "repointed-forward", "jumps-out-of-rank"])
def test_iptables_content_drift_is_reported_and_repaired(netns, tamper):
    assert netns.kvmnet("apply", "--firewall", "iptables", str(TOPOLOGY)).returncode == 0
    loaded = _rules(netns)
    tamper(netns)
    assert _rules(netns) != loaded
    _drift_is_reported_and_repaired(netns, "firewall:iptables:", "--firewall", "iptables")
    assert _rules(netns) == loaded
    netns.kvmnet("destroy", str(TOPOLOGY))


def test_foreign_iptables_chains_of_kvmnets_name_are_a_conflict(netns):
    netns.run("iptables-legacy", "-N", f"{PREFIX}-FWD")
    netns.run("iptables-legacy", "-A", f"{PREFIX}-FWD", "-j", "ACCEPT")
    before = netns.snapshot()
    res = netns.kvmnet("apply", "--firewall", "iptables", str(TOPOLOGY))
    assert res.returncode == 2, res.stderr
    assert (f"{TOPOLOGY}:5: networks.default: iptables chain {PREFIX}-FWD already exists on this host "
            "and kvmnet has no record of creating it") in res.stderr, res.stderr
    _still(netns, before)
    netns.run("iptables-legacy", "-F", f"{PREFIX}-FWD")
    netns.run("iptables-legacy", "-X", f"{PREFIX}-FWD")


# ---- iptables, IPv6: the ip6 chains are part of the same ruleset

DUAL = Path(__file__).resolve().parents[2] / "topologies" / "dual-stack.toml"
DUAL_PREFIX = ipt.render(config.load(str(DUAL))).name  # KN-dual_stack


def _rules6(netns) -> list[str]:
    return [re.sub(r" \[\d+:\d+\]$", "", l) for l in netns.run("ip6tables-legacy-save").stdout.splitlines()
            if not l.startswith("#")]


def _ip6_rule_deleted(netns):
    """The routed prefix's accept into its bridge (the kvmnet rule a user is likeliest to lose)."""
    netns.run("ip6tables-legacy", "-D", f"{DUAL_PREFIX}-FWD", "3")


def _ip6_reject_made_accept(netns):
    """Every count and comment still adds up: only the rule-for-rule compare sees it."""
    chain = f"{DUAL_PREFIX}-ISO"  # the isolated network's refusal of all it sends elsewhere
    lines = [l for l in netns.run("ip6tables-legacy-save", "-t", "filter").stdout.splitlines()
             if l.startswith(f"-A {chain} ") and "-i kvmds1 " in l and "REJECT" in l]
    argv = shlex.split(lines[0])[2:]
    pos = [l for l in netns.run("ip6tables-legacy-save", "-t", "filter").stdout.splitlines()
           if l.startswith(f"-A {chain} ")].index(lines[0]) + 1
    netns.run("ip6tables-legacy", "-R", chain, str(pos), *argv[:argv.index("-j")], "-j", "ACCEPT")


def _ip6_jump_lost(netns):
    netns.run("ip6tables-legacy", "-D", "INPUT", "-m", "comment", "--comment", "kvmnet", "-j", f"{DUAL_PREFIX}-INP")


@pytest.mark.parametrize("tamper", [_ip6_rule_deleted, _ip6_reject_made_accept, _ip6_jump_lost],
                         ids=["rule-deleted", "reject-made-accept", "jump-lost"])
def test_ip6tables_drift_is_reported_and_repaired(netns, tamper):
    netns.add_uplink()
    res = netns.kvmnet("apply", "--firewall", "iptables", str(DUAL))
    assert res.returncode == 0, res.stderr
    loaded, loaded4 = _rules6(netns), _rules(netns)
    assert any(l.startswith(f"-A {DUAL_PREFIX}-FWD ") for l in loaded), loaded
    tamper(netns)
    assert _rules6(netns) != loaded
    check = netns.kvmnet("check", str(DUAL))
    assert check.returncode == 1 and "firewall:iptables:" in check.stdout, check.stdout + check.stderr
    res = netns.kvmnet("apply", "--firewall", "iptables", str(DUAL))
    assert res.returncode == 0, res.stderr
    assert netns.kvmnet("check", str(DUAL)).returncode == 0
    assert _rules6(netns) == loaded and _rules(netns) == loaded4
    assert netns.kvmnet("destroy", str(DUAL)).returncode == 0
    assert DUAL_PREFIX not in netns.run("ip6tables-legacy-save").stdout


def test_foreign_ip6tables_chain_of_kvmnets_name_is_a_conflict(netns):
    netns.add_uplink()
    netns.run("ip6tables-legacy", "-N", f"{DUAL_PREFIX}-FWO")
    netns.run("ip6tables-legacy", "-A", f"{DUAL_PREFIX}-FWO", "-j", "ACCEPT")
    before = netns.snapshot()
    res = netns.kvmnet("apply", "--firewall", "iptables", str(DUAL))
    assert res.returncode == 2, res.stderr
    assert (f"ip6tables chain {DUAL_PREFIX}-FWO already exists on this host "
            "and kvmnet has no record of creating it") in res.stderr, res.stderr
    _still(netns, before)
    netns.run("ip6tables-legacy", "-F", f"{DUAL_PREFIX}-FWO")
    netns.run("ip6tables-legacy", "-X", f"{DUAL_PREFIX}-FWO")


def test_dropping_ipv6_drops_the_ip6_chains_and_a_failed_apply_restores_them(netns, tmp_path):
    netns.add_uplink()
    assert netns.kvmnet("apply", "--firewall", "iptables", str(DUAL)).returncode == 0
    loaded = _rules6(netns)
    ipv4_only = tmp_path / DUAL.name  # same file name: the same topology
    ipv4_only.write_text("".join(line for line in DUAL.read_text().splitlines(keepends=True)
                                 if not re.match(r"(subnet6|gateway6|nat6|ip6|start = \"fd|end = \"fd|\[networks\.default\.dhcp6\])",
                                                 line)))
    assert "fd00" not in ipv4_only.read_text()
    plan = json.loads(netns.kvmnet("plan", "--json", "--replace", str(ipv4_only)).stdout)
    steps = [s["do"]["op"] for s in plan["steps"]]
    assert "firewall.apply" in steps and steps[-1] != "firewall.apply", steps
    # the fault comes after the firewall step (1-based: index + 2): the ip6 chains are gone by then
    res = netns.kvmnet("apply", "--replace", str(ipv4_only), env={"KVMNET_FAULT_AT": str(steps.index("firewall.apply") + 2)})
    assert res.returncode == 1 and "rolled back" in res.stderr, res.stderr
    assert "load firewall rules" in res.stderr.split("rolled back")[1], res.stderr  # the chains it had
    assert _rules6(netns) == loaded, "rollback did not restore the ip6 chains exactly"
    res = netns.kvmnet("check", str(DUAL))  # IPv6 forwarding set again too: nothing drifted
    assert res.returncode == 0, res.stdout + res.stderr
    assert netns.kvmnet("apply", "--replace", str(ipv4_only)).returncode == 0
    assert DUAL_PREFIX not in netns.run("ip6tables-legacy-save").stdout
    assert netns.kvmnet("check", str(ipv4_only)).returncode == 0
    assert netns.kvmnet("destroy", str(ipv4_only)).returncode == 0
    assert DUAL_PREFIX not in netns.run("iptables-legacy-save").stdout
