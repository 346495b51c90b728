"""kvmnet against libvirt itself: each scenario's libvirt network XML is started by a real
libvirtd (in its own namespaces) and, imported by `kvmnet import libvirt`, applied by kvmnet in a
twin namespace; twin clients (same MACs, same addresses, a wan at the same address) run the same
probes on both, and the outcomes must be equal, unless the difference is listed in DIFFERENCES
with the reason kvmnet differs on purpose (and then it must be exactly that difference)."""

from __future__ import annotations

import pytest

from conftest import host_network_state
from twins import WAN_PEER, dns, fetch, residue

pytestmark = pytest.mark.root

# "scenario: probe": (libvirt's outcome, kvmnet's outcome, why kvmnet differs on purpose); an
# "any probe: ..." entry covers every probe with exactly that pair of outcomes.
# The README's table "where kvmnet differs from libvirt on purpose" mirrors this one.
DIFFERENCES: dict[str, tuple[str, str, str]] = {
    "any probe: a refused connection": (
        "refused", "no route",
        "kvmnet rejects with ICMP admin-prohibited (connect() fails with EHOSTUNREACH, 'No route to "
        "host'), libvirt with port-unreachable ('Connection refused'): the answer says a firewall "
        "refused the connection instead of pretending that nothing listens; both refuse at once"),
    "nat: offer from the range": (
        "after a ping check (>= 2 s)", "at once (< 2 s)",
        "kvmnet's dnsmasq has no-ping: libvirt's pings an address from the range for ~3 s before "
        "offering it, to spot a host that took it without DHCP; on a bridge whose range only this "
        "dnsmasq hands out, that only delays every new guest's first lease"),
    "nat: DNS: unknown name in the domain": (
        "no answer", "not found",
        "kvmnet's dnsmasq answers for the network's domain itself (local=/DOMAIN/, libvirt's "
        "localOnly='yes'); libvirt's default forwards unknown names of the domain upstream, which "
        "leaks internal names to the upstream resolver and waits for it (here: no upstream, no answer)"),
    "every scenario: left after teardown": (
        "nft ip filter; nft ip mangle; nft ip nat; nft ip6 filter; nft ip6 mangle; nft ip6 nat; "
        "iptables: 7 rules (jumps to LIBVIRT_FWI, LIBVIRT_FWO, LIBVIRT_FWX, LIBVIRT_INP, LIBVIRT_OUT, LIBVIRT_PRT); "
        "ip6tables: 7 rules (jumps to LIBVIRT_FWI, LIBVIRT_FWO, LIBVIRT_FWX, LIBVIRT_INP, LIBVIRT_OUT, LIBVIRT_PRT); "
        "sysctl net.ipv4.conf.all.accept_redirects = 0; sysctl net.ipv4.conf.all.forwarding = 1; "
        "sysctl net.ipv4.conf.default.forwarding = 1; sysctl net.ipv4.conf.lo.forwarding = 1; "
        "sysctl net.ipv4.conf.wan0.forwarding = 1; sysctl net.ipv4.ip_forward = 1",
        "nothing",
        "kvmnet removes everything it made (its nft table, with the jumps in it) and turns "
        "ip_forward back off if it turned it on; libvirt leaves its (empty) LIBVIRT_* chains, "
        "the jumps to them and ip_forward=1 (which also turns off accept_redirects)"),
}


def lease(client) -> str:
    return " ".join(f"{k}={v}" for k, v in client.lease.items())


def offer_delay(client) -> str:
    return "after a ping check (>= 2 s)" if client.lease_ms >= 2000 else "at once (< 2 s)"


def probe_nat(side, c) -> dict:
    gw = "192.168.101.1"
    return {
        "lease of a static host": lease(c["web"]),
        "lease from the range": lease(c["dyn"]),
        "offer from the range": offer_delay(c["dyn"]),
        "NAT out, as the wan sees it": fetch(c["web"].ns, WAN_PEER),
        "guest to guest": fetch(c["dyn"].ns, c["web"].lease.get("ip", "0.0.0.0")),
        "inbound from the wan": fetch(side.wan, "192.168.101.10"),
        "DNS: static host's name": dns(c["dyn"].ns, "web", gw),
        "DNS: static host in the domain": dns(c["dyn"].ns, "web.nat.test", gw),
        "DNS: <dns><host> record": dns(c["dyn"].ns, "files", gw),
        "DNS: unknown name in the domain": dns(c["dyn"].ns, "nosuch.nat.test", gw),
        "DNS from outside (the wan)": dns(side.wan, "web", gw),
    }


def probe_isolated(side, c) -> dict:
    gw = "192.168.102.1"
    return {
        "lease of a static host": lease(c["db"]),
        "lease from the range": lease(c["iso"]),
        "guest to the wan": fetch(c["db"].ns, WAN_PEER),
        "guest to guest": fetch(c["iso"].ns, "192.168.102.10"),
        "inbound from the wan": fetch(side.wan, "192.168.102.10"),
        "DNS: static host's name": dns(c["iso"].ns, "db", gw),
        "DNS from outside (the wan)": dns(side.wan, "db", gw),
    }


def probe_routed(side, c) -> dict:
    gw = "192.168.103.1"
    return {
        "lease of a static host": lease(c["app"]),
        "out to the wan, as the wan sees it": fetch(c["app"].ns, WAN_PEER),
        "inbound from the wan": fetch(side.wan, "192.168.103.10"),
        "DNS: static host's name": dns(c["app"].ns, "app", gw),
        "DNS from outside (the wan)": dns(side.wan, "app", gw),
    }


def probe_pair(side, c) -> dict:
    return {
        "lease on network a": lease(c["vma"]),
        "lease on network b": lease(c["vmb"]),
        "a to b": fetch(c["vma"].ns, "192.168.105.10"),
        "b to a": fetch(c["vmb"].ns, "192.168.104.10"),
        "a to the wan": fetch(c["vma"].ns, WAN_PEER),
        "inbound from the wan to b": fetch(side.wan, "192.168.105.10"),
    }


PAIR_CLIENTS = {"vma": ("52:54:00:65:04:10", "lvbr4"), "vmb": ("52:54:00:65:05:10", "lvbr5")}
# isolated first: libvirt leaves ip_forward=1 behind (see DIFFERENCES), which would change how
# an isolated network started after a NAT one drops forwarded packets
# name: (libvirt XML stems, their libvirt names, kvmnet topologies (XML stems per file), clients, probes)
SCENARIOS = {
    "isolated": (["isolated"], ["lviso"], [["isolated"]],
                 {"db": ("52:54:00:65:02:10", "lvbr2"), "iso": ("52:54:00:65:02:77", "lvbr2")}, probe_isolated),
    "nat": (["nat"], ["lvnat"], [["nat"]],
            {"web": ("52:54:00:65:01:10", "lvbr1"), "dyn": ("52:54:00:65:01:77", "lvbr1")}, probe_nat),
    "routed": (["routed"], ["lvroute"], [["routed"]], {"app": ("52:54:00:65:03:10", "lvbr3")}, probe_routed),
    "two NAT networks, two kvmnet topologies": (["pair-a", "pair-b"], ["lvpaira", "lvpairb"],
                                                [["pair-a"], ["pair-b"]], PAIR_CLIENTS, probe_pair),
    "two NAT networks, one kvmnet topology": (["pair-a", "pair-b"], ["lvpaira", "lvpairb"],
                                              [["pair-a", "pair-b"]], PAIR_CLIENTS, probe_pair),
}


def outcomes(twin, scenario: str) -> dict[str, tuple[str, str]]:
    """{probe: (libvirt's outcome, kvmnet's)} of a scenario, run once per session."""
    if scenario not in twin.results:
        stems, names, topologies, clients, probe = SCENARIOS[scenario]
        files = twin.start(stems, topologies)
        try:
            lv, kv = twin.plug(clients)
            got = probe(twin.libvirt, lv), probe(twin.kvmnet, kv)
        finally:
            twin.stop(names, files)
        twin.results[scenario] = {k: (got[0][k], got[1][k]) for k in got[0]}
    return twin.results[scenario]


def listed(scenario: str, probe: str, pair: tuple[str, str]) -> str | None:
    """The DIFFERENCES key that covers this probe, if any."""
    key = f"{scenario}: {probe}"
    if key in DIFFERENCES:
        return key
    return next((k for k, v in DIFFERENCES.items() if k.startswith("any probe: ") and v[:2] == pair), None)


def compare(scenario: str, pairs: dict[str, tuple[str, str]]) -> list[str]:
    """Every probe whose outcomes differ other than as DIFFERENCES says, in words."""
    bad = []
    for probe, pair in pairs.items():
        key = listed(scenario, probe, pair)
        if key and pair != DIFFERENCES[key][:2]:
            bad.append(f"{key}: listed as libvirt {DIFFERENCES[key][0]!r} / kvmnet {DIFFERENCES[key][1]!r}, "
                       f"now {pair[0]!r} / {pair[1]!r}")
        elif not key and pair[0] != pair[1]:
            bad.append(f"{scenario}: {probe}: libvirt {pair[0]!r}, kvmnet {pair[1]!r}")
    return bad


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_libvirt_and_kvmnet_outcomes_match(twin, scenario):
    bad = compare(scenario, outcomes(twin, scenario))
    assert not bad, "undocumented differences from libvirt:\n" + "\n".join(bad)


def test_libvirt_and_kvmnet_teardown_leaves(twin):
    """After every scenario has been started and torn down on both sides: what is left."""
    for scenario in SCENARIOS:
        outcomes(twin, scenario)
    left = tuple(residue(twin.baseline[s.label], s.host.snapshot()) for s in twin.sides)
    bad = compare("every scenario", {"left after teardown": left})
    assert not bad, "\n".join(bad)


def test_libvirt_differences_table_lists_only_differences_still_seen(twin):
    left = tuple(residue(twin.baseline[s.label], s.host.snapshot()) for s in twin.sides)
    for scenario in SCENARIOS:
        outcomes(twin, scenario)
    runs = dict(twin.results, **{"every scenario": {"left after teardown": left}})
    seen = {listed(s, p, pair) for s, pairs in runs.items() for p, pair in pairs.items()}
    assert set(DIFFERENCES) <= seen, f"stale entries: {set(DIFFERENCES) - seen}"


def test_libvirt_suite_left_this_machine_untouched(twin, host_before):
    """Last: the daemon stopped and every namespace gone, this machine's own ruleset and links
    are as they were before the suite started libvirtd."""
    twin.close()
    assert host_network_state() == host_before
