"""The iptables backend (legacy xtables through python-iptables), proven in namespaces.

The NAT behaviours are test_nat_netns.py's own test functions, collected here a second time
against a lab applied with `--firewall iptables` (pytest resolves their `lab` fixture in this
module). What is backend-specific is here: the loaded rules are the rendered ones, a re-apply
writes nothing, foreign legacy rules in every table kvmnet touches stay byte-identical through
apply and destroy, drift (a flushed chain, a lost jump) is seen by plan/check and repaired,
a failed apply rolls the chains back to what they were, and the backend refuses to run beside
iptables-nft rules.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.natlab import running_lab
from helpers.netns import KVMNET, ROOT, snapshot_diff
from kvmnet import config
from kvmnet.render import iptables as ipt

import test_nat_netns as nat

pytestmark = pytest.mark.root
TOPOLOGY = nat.TOPOLOGY
RULESET = ipt.render(config.load(str(TOPOLOGY)))
PREFIX = RULESET.name  # KN-natlab

# foreign legacy rules in each table kvmnet writes; the FORWARD accept would let the WAN into
# the subnet if kvmnet's jump were not ahead of it
CANARY = """*raw
-A PREROUTING -s 1.2.3.4/32 -m comment --comment canary
COMMIT
*nat
-A POSTROUTING -s 10.99.0.0/16 -j MASQUERADE
COMMIT
*filter
-A INPUT -s 1.2.3.4/32 -m comment --comment canary -j ACCEPT
-A FORWARD -m comment --comment "canary: a permissive host" -j ACCEPT
COMMIT
"""

# test_nat_netns.py's backend-neutral tests, run here against the iptables lab
from test_nat_netns import (  # noqa: E402,F401
    test_dns_answers_from_the_gateway,
    test_forward_from_the_host_itself,
    test_forward_from_the_wan_keeps_the_client_address,
    test_gateway_answers_ping,
    test_hairpin_from_another_guest,
    test_localhost_only_forward_is_not_reachable_from_the_wan,
    test_nothing_answers_dns_on_the_wan_address,
    test_outbound_is_masqueraded,
    test_port_range_forward,
    test_static_and_dynamic_leases,
    test_wan_cannot_route_into_the_subnet,
)


def save(ns, counters: bool = False) -> str:
    """iptables-legacy-save without its date comments (and, unless asked, without the built-in
    chains' packet counters, which traffic moves)."""
    out = ns.run("iptables-legacy-save", *(["-c"] if counters else [])).stdout
    lines = [l for l in out.splitlines() if not l.startswith("#")]
    if not counters:
        lines = [re.sub(r" \[\d+:\d+\]$", "", l) if l.startswith(":") else l for l in lines]
    return "\n".join(lines) + "\n"


def foreign(ns) -> str:
    """Everything in the legacy tables that is not kvmnet's (policies, foreign chains and rules, in order)."""
    return "\n".join(l for l in save(ns).splitlines() if PREFIX + "-" not in l) + "\n"


def ours(ns) -> list[str]:
    return [l for l in save(ns).splitlines() if PREFIX + "-" in l]


def expected_lines(rs=RULESET) -> list[str]:
    """The rendered ruleset as iptables-legacy-save lists it."""
    lines = []
    for table, body in rs.to_json()["tables"].items():
        lines += [f":{c} -" for c in body["chains"]]
        lines += [f"-A {ipt.chain_names(rs.name)[c][2]} {ipt.save_args(a)}" for c, a in body["jumps"].items()]
        lines += [f"-A {c} {ipt.save_args(r)}" for c, rules in body["chains"].items() for r in rules]
    return lines


def replaces(ns, *args, env=None) -> tuple[subprocess.CompletedProcess, list[str] | None]:
    """Run kvmnet under strace: its result and the tables it replaced (each IPT_SO_SET_REPLACE
    setsockopt is one table written); None for the tables where strace is not installed."""
    if not shutil.which("strace"):
        return ns.kvmnet(*args, env=env), None
    log = Path(f"/tmp/{ns.name}-strace.txt")
    full = dict(os.environ, KVMNET_STATE_DIR=str(ns.state_dir), PYTHONPATH=str(ROOT), **(env or {}))
    try:
        res = ns.run("strace", "-f", "-qq", "-e", "trace=setsockopt", "-o", str(log), *KVMNET, *args, env=full, check=False)
        text = log.read_text()
    finally:
        log.unlink(missing_ok=True)
    return res, [l.split('"')[1].rstrip("\\0") for l in text.splitlines() if "IPT_SO_SET_REPLACE" in l]


def _canary(lab):
    lab.host.run("iptables-legacy-restore", "--noflush", input=CANARY)
    lab.canary = foreign(lab.host)


@pytest.fixture(scope="module")
def lab():
    with running_lab(TOPOLOGY, "iptables", _canary) as lab:
        yield lab


def test_loaded_rules_are_the_rendered_ones_with_jumps_first(lab):
    """Each jump first in its built-in chain, except FWO: right below FWD (outbound accepts after
    every network's inbound rejects)."""
    assert sorted(ours(lab.host)) == sorted(expected_lines())
    for table, body in RULESET.to_json()["tables"].items():
        for chain, argv in body["jumps"].items():
            builtin = ipt.chain_names(RULESET.name)[chain][2]
            listing = lab.host.run("iptables-legacy", "-t", table, "-S", builtin).stdout.splitlines()
            at = 2 if chain.endswith("-FWO") else 1  # right after the policy line (and FWD)
            assert listing[at] == f"-A {builtin} {ipt.save_args(argv)}", listing
    if shutil.which("nft"):
        assert lab.host.run("nft", "list", "ruleset").stdout.strip() == "", "the iptables backend wrote nftables"
    status = json.loads(lab.kvmnet("status", "--json").stdout)
    assert status["topologies"][0]["firewall"] == "iptables"


def test_observe_through_iptc_matches_iptables_legacy_save(lab):
    code = ("import json; from kvmnet.host import iptables_lib as h, iptables_read as r; from kvmnet.render.iptables import TABLES; from kvmnet.render.iptables_verdict import judge;"
            f"a = judge('{PREFIX}', h.read_iptc(list(TABLES), '{PREFIX}')); b = r.observe('{PREFIX}');"
            "print(json.dumps([a == b, b['intact'], b['digest']]))")
    out = lab.host.run(sys.executable, "-c", code, env=dict(os.environ, PYTHONPATH=str(ROOT))).stdout
    assert json.loads(out) == [True, True, RULESET.digest]


def test_reapply_is_a_noop_with_zero_firewall_writes(lab):
    before = save(lab.host, counters=True)
    res, written = replaces(lab.host, "apply", "--firewall", "iptables", str(TOPOLOGY))
    assert res.returncode == 0, res.stderr
    assert "already in sync" in res.stdout
    if written is not None:
        assert written == [], f"a no-op apply replaced tables {written}"
    assert save(lab.host, counters=True) == before  # rules, order and counters untouched
    assert lab.kvmnet("check", str(TOPOLOGY)).returncode == 0


def test_flushed_chain_is_detected_and_repaired(lab):
    lab.host.run("iptables-legacy", "-t", "nat", "-F", f"{PREFIX}-POST")
    assert lab.web.fetch("http://10.0.0.1/") != "wan saw 10.0.0.2\n"  # no masquerade: no way back
    plan = json.loads(lab.kvmnet("plan", "--json", str(TOPOLOGY)).stdout)
    assert [s["do"]["op"] for s in plan["steps"]] == ["firewall.apply"], plan
    assert plan["firewall"] == "iptables"
    check = lab.kvmnet("check", str(TOPOLOGY))
    assert check.returncode == 1 and "firewall:iptables:" in check.stdout, check.stdout
    filter_table = lambda: save(lab.host, counters=True).split("*filter")[1].split("COMMIT")[0]  # noqa: E731
    filter_before = filter_table()
    res, written = replaces(lab.host, "apply", str(TOPOLOGY))
    assert res.returncode == 0, res.stderr
    if written is not None:
        assert written == ["nat"], written  # only the damaged table is rewritten
    assert filter_table() == filter_before  # the filter chains (and their counters) untouched
    assert sorted(ours(lab.host)) == sorted(expected_lines())
    assert lab.kvmnet("check", str(TOPOLOGY)).returncode == 0
    assert lab.web.fetch("http://10.0.0.1/") == "wan saw 10.0.0.2\n"


def test_lost_jump_and_foreign_rule_in_our_chain_are_repaired(lab):
    lab.host.run("iptables-legacy", "-D", "FORWARD", "-m", "comment", "--comment", "kvmnet", "-j", f"{PREFIX}-FWD")
    lab.host.run("iptables-legacy", "-A", f"{PREFIX}-INP", "-p", "tcp", "--dport", "22", "-j", "ACCEPT")
    lab.host.run("iptables-legacy", "-t", "nat", "-I", "OUTPUT", "1", "-m", "comment", "--comment", "kvmnet",
                 "-j", f"{PREFIX}-OUT")  # a second jump
    assert lab.kvmnet("check", str(TOPOLOGY)).returncode == 1
    res = lab.kvmnet("apply", str(TOPOLOGY))
    assert res.returncode == 0, res.stderr
    assert sorted(ours(lab.host)) == sorted(expected_lines())
    assert foreign(lab.host) == lab.canary
    assert lab.kvmnet("check", str(TOPOLOGY)).returncode == 0
    nat.test_wan_cannot_route_into_the_subnet(lab)  # the FWD rejects are back ahead of the canary's accept


def test_foreign_rules_untouched_and_destroy_leaves_no_trace(lab):
    assert foreign(lab.host) == lab.canary
    lab.remove_clients()
    res = lab.kvmnet("destroy", str(TOPOLOGY))
    assert res.returncode == 0, res.stderr
    assert ours(lab.host) == [] and "KN-" not in save(lab.host)
    assert foreign(lab.host) == lab.canary
    after = lab.host.snapshot()
    assert after == lab.before, snapshot_diff(lab.before, after)
    again = lab.kvmnet("destroy", str(TOPOLOGY))
    assert again.returncode == 0 and "nothing to destroy" in again.stdout
    lab.apply()  # leave the lab as the fixture expects for any later test


# ---- in a plain namespace (no lab): changes, rollback, refusal, scale

def _variant(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "nat-lab.toml"  # same file name, so the same topology (natlab)
    path.write_text(text)
    return path


def test_changed_topology_drops_stale_chains_and_failed_apply_rolls_back(netns, tmp_path):
    assert netns.kvmnet("apply", "--firewall", "iptables", str(TOPOLOGY)).returncode == 0
    full = save(netns)
    # no forwards: GRD, PRE and OUT go (with their jumps); a new domain so dnsmasq restarts too
    text = TOPOLOGY.read_text().split("[[networks.default.forwards]]")[0] + "[guests.web]" + \
        TOPOLOGY.read_text().split("[guests.web]")[1]
    smaller = _variant(tmp_path, text.replace('domain = "kvm.lan"', 'domain = "other.lan"'))
    steps = [s["do"]["op"] for s in json.loads(netns.kvmnet("plan", "--json", "--replace", str(smaller)).stdout)["steps"]]
    assert "firewall.apply" in steps and steps[-1] != "firewall.apply", steps
    fail_at = str(steps.index("firewall.apply") + 1)
    res = netns.kvmnet("apply", "--replace", str(smaller), env={"KVMNET_FAULT_AT": fail_at})
    assert res.returncode == 1 and "rolled back" in res.stderr, res.stderr
    assert save(netns) == full, "rollback did not restore the previous chains exactly"
    assert netns.kvmnet("check", str(TOPOLOGY)).returncode == 0
    assert netns.kvmnet("apply", "--replace", str(smaller)).returncode == 0
    left = {l.split()[1] if l.startswith("-A") else l[1:].split()[0] for l in ours(netns)}
    assert left == {f"{PREFIX}-FWD", f"{PREFIX}-FWO", f"{PREFIX}-INP", f"{PREFIX}-POST", "FORWARD", "INPUT", "POSTROUTING"}, left
    assert netns.kvmnet("check", str(smaller)).returncode == 0
    assert netns.kvmnet("destroy", str(smaller)).returncode == 0
    assert ours(netns) == []


def test_destroy_never_removes_a_foreign_rule_that_jumps_to_a_kvmnet_chain(netns):
    assert netns.kvmnet("apply", "--firewall", "iptables", str(TOPOLOGY)).returncode == 0
    netns.run("iptables-legacy", "-N", "FOREIGN")
    netns.run("iptables-legacy", "-A", "FOREIGN", "-j", f"{PREFIX}-FWD")
    res = netns.kvmnet("destroy", str(TOPOLOGY))
    assert res.returncode == 1 and f"{PREFIX}-FWD" in res.stderr and "still jumps to it" in res.stderr, res.stderr
    assert netns.run("iptables-legacy", "-S", "FOREIGN").stdout.splitlines()[1] == f"-A FOREIGN -j {PREFIX}-FWD"
    netns.run("iptables-legacy", "-F", "FOREIGN")
    assert netns.kvmnet("destroy", str(TOPOLOGY)).returncode == 0
    assert ours(netns) == [] and netns.run("iptables-legacy", "-S", "FOREIGN").stdout == "-N FOREIGN\n"


def _iptables_is_nft() -> bool:
    exe = shutil.which("iptables")
    return bool(exe) and "nf_tables" in subprocess.run([exe, "-V"], capture_output=True, text=True).stdout


@pytest.mark.skipif(not _iptables_is_nft(), reason="this host's iptables is not iptables-nft")
def test_refused_beside_iptables_nft_rules(netns):
    netns.run("iptables-nft", "-A", "FORWARD", "-s", "1.2.3.4/32", "-j", "ACCEPT")
    before = netns.snapshot()
    res = netns.kvmnet("plan", "--firewall", "iptables", str(TOPOLOGY))
    assert res.returncode == 2, res.stdout + res.stderr
    assert "iptables-nft" in res.stderr and "--firewall nftables" in res.stderr, res.stderr
    assert "-A FORWARD -s 1.2.3.4/32 -j ACCEPT" in res.stderr
    assert netns.kvmnet("apply", "--firewall", "iptables", str(TOPOLOGY)).returncode == 2
    after = netns.snapshot()
    assert after == before, snapshot_diff(before, after)


def test_thousand_forwards_apply_noop_and_destroy(netns, tmp_path):
    base = (ROOT / "topologies" / "nat.toml").read_text().split("[[networks.default.forwards]]")[0]
    forwards = "".join(f'[[networks.default.forwards]]\nhost_port = {10000 + i}\nguest = "web"\nguest_port = {20000 + i}\n'
                       for i in range(1000))
    guest = '[guests.web]\n[[guests.web.nics]]\nnetwork = "default"\nmac = "52:54:00:12:34:56"\nip = "192.168.122.10"\n'
    path = tmp_path / "fwd1000.toml"
    path.write_text(base + forwards + guest)
    start = time.monotonic()
    res = netns.kvmnet("apply", "--firewall", "iptables", str(path))
    took = time.monotonic() - start
    assert res.returncode == 0, res.stderr
    assert "2023 rules, 1000 forwards" in res.stdout  # 2000 DNAT + 23 per-network rules
    chains = save(netns)
    assert chains.count(" -j DNAT ") == 2000
    res, written = replaces(netns, "apply", str(path))
    assert res.returncode == 0 and "already in sync" in res.stdout and written in ([], None), written
    assert save(netns) == chains
    assert netns.kvmnet("destroy", str(path)).returncode == 0
    assert "KN-" not in save(netns)
    print(f"apply of 1000 forwards (whole kvmnet apply): {took:.2f} s")


def _ip6tables_is_nft() -> bool:
    exe = shutil.which("ip6tables")
    return bool(exe) and "nf_tables" in subprocess.run([exe, "-V"], capture_output=True, text=True).stdout


@pytest.mark.skipif(not _ip6tables_is_nft(), reason="this host's ip6tables is not ip6tables-nft")
def test_refused_beside_ip6tables_nft_rules(netns):
    """IPv6 follows IPv4: kvmnet's legacy ip6 chains would run blind beside ip6tables-nft's.
    A topology without IPv6 writes no ip6 chains, so those rules do not stand in its way."""
    netns.run("ip6tables-nft", "-A", "FORWARD", "-s", "fd00:1::/64", "-j", "ACCEPT")
    before = netns.snapshot()
    res = netns.kvmnet("plan", "--firewall", "iptables", str(TOPOLOGY))
    assert res.returncode == 0, res.stdout + res.stderr
    res = netns.kvmnet("plan", "--firewall", "iptables", str(ROOT / "topologies" / "dual-stack.toml"))
    assert res.returncode == 2, res.stdout + res.stderr
    assert "ip6tables-nft" in res.stderr and "--firewall nftables" in res.stderr, res.stderr
    assert "-A FORWARD -s fd00:1::/64 -j ACCEPT" in res.stderr
    after = netns.snapshot()
    assert after == before, snapshot_diff(before, after)


_MASKS = """
import json
from kvmnet.host import iptables_lib as L
iptc = L.Lib.get()[0]
with L.table_handle("filter", 6) as t:
    t.create_chain("KN-m-FWD")
    t.append_entry("KN-m-FWD", L.Encoder(t).blob(["-i", "kv6c", "-o", "br+", "-j", "ACCEPT"]))
    t.commit()
old = iptc.Rule6()  # python-iptables' own interface masks (0x01 bytes), as kvmnet loaded them before
old.in_interface = "kv6c"
old.target = iptc.Target(old, "ACCEPT")
iptc.Chain(iptc.Table6("filter"), "KN-m-FWD").append_rule(old)
t = iptc.Table6("filter")
t.refresh()
mine, theirs = L.entries(t, "KN-m-FWD")
print(json.dumps([mine.ipv6.iniface_mask.hex(), mine.ipv6.outiface_mask.hex(), L.decode(t, mine), L.decode(t, theirs)]))
"""


def test_ip6_rules_match_whole_interface_names_and_a_partial_mask_reads_as_drift(netns):
    """python-iptables' Rule6 writes interface masks of 0x01 bytes, so the kernel compared each
    character's lowest bit only: `-i kv6c -j REJECT` refused a routed network's kv6a traffic.
    kvmnet writes ip6tables' masks, and reads a rule with another mask as not its own rule."""
    out = netns.run(sys.executable, "-c", _MASKS, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    iniface, outiface, mine, theirs = json.loads(out.stdout)
    assert (iniface, outiface) == ("ff" * 5, "ff" * 2)
    assert mine == ["-i", "kv6c", "-o", "br+", "-j", "ACCEPT"]
    assert theirs == ["-i", "kv6c?", "-j", "ACCEPT"]
