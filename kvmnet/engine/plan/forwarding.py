"""Facts for forwarding networks: sysctls, kvmnet's firewall table, and dnsmasq. Pure."""

from __future__ import annotations

from ... import naming
from ...model import ROUTING_MODES, Topology
from ...observed import Observed
from ...render import dnsmasq as dnsmasq_conf
from ...render import nft
from ..steps import Step

SHARED_KEYS = ("sysctl:net/ipv4/ip_forward",)  # host-wide facts several topologies may need
BR_NF_CALL = "net/bridge/bridge-nf-call-iptables"  # br_netfilter: bridged frames meet iptables


def firewall_step(topo: Topology, observed: Observed, backend: str) -> Step | None:
    """The firewall.apply step, or None when kvmnet's rules on the host are already these."""
    table = naming.nft_table(topo.name)
    if not nft.needs_table(topo):
        return None
    if backend == "iptables":
        return _iptables_step(topo, observed)
    ruleset = nft.render(topo, table)
    seen = observed.firewall
    if (seen.get("exists") and seen.get("rules") == ruleset.rules and seen.get("elements") == ruleset.elements
            and seen.get("comments") == [f"kvmnet {ruleset.digest}"]):
        return None
    return Step("firewall.apply", {
        "backend": backend, "table": table, "ruleset": ruleset.text, "delete": nft.delete_text(table),
        "summary": ruleset.summary, "previous": seen.get("text"),
        "command": f"nft -f - <<'EOF' ... EOF  # {ruleset.summary}"})


def _iptables_step(topo: Topology, observed: Observed) -> Step | None:
    """Same contract on the iptables backend: kvmnet's own chains, rebuilt per table in one commit."""
    from ...render import iptables as ipt

    ruleset = ipt.render(topo)
    if observed.firewall.get("digest") == ruleset.digest and observed.firewall.get("intact"):
        return None
    return Step("firewall.apply", {
        "backend": "iptables", "table": ruleset.name, "ruleset": ruleset.to_json(), "summary": ruleset.summary,
        "previous": observed.firewall.get("saved"), "delete": None,
        "command": f"iptables-legacy-restore --noflush <<'EOF' ... EOF  # {ruleset.summary}"})


def dnsmasq_step(topo: Topology, net, observed: Observed, state_dir: str) -> Step | None:
    paths = naming.dnsmasq_paths(state_dir, net.name)
    text = dnsmasq_conf.render(topo, net, paths, observed.dnsmasq_user)
    seen = observed.processes.get(f"dnsmasq:{net.name}", {})
    if seen.get("pid") and seen.get("conf_text") == text:
        return None
    return Step("dnsmasq.start", {
        "network": net.name, "bridge": net.bridge, "conf": paths["conf"], "conf_text": text,
        "pid_file": paths["pid"], "leases": paths["leases"], "exe": observed.dnsmasq_exe,
        "previous": seen.get("conf_text") if seen.get("pid") else None})


def dnsmasq_networks(topo: Topology):
    return [n for n in topo.networks if dnsmasq_conf.needs_dnsmasq(n)]


def firewall_actions(topo: Topology, observed: Observed, backend: str, state_dir: str, sysctl):
    """Yield (key, step or None) after registering the sysctls through `sysctl(path, value)`."""
    for net in topo.networks:
        if net.mode in ROUTING_MODES:
            sysctl("net/ipv4/ip_forward", "1")
        if net.mode == "nat" and net.forwards:
            # 127.0.0.1:PORT forwards route a loopback source out of the bridge; the guard
            # chain drops anything arriving on the bridge for 127/8, so nothing else opens.
            sysctl(f"net/ipv4/conf/{net.bridge}/route_localnet", "1")
    if observed.host_forward.get("policy") == "DROP":
        for net in topo.networks:
            specs = _forward_accepts(net, topo.name, backend, observed)
            if specs:
                held = all(_save_line(spec) in observed.host_forward.get("rules", []) for spec in specs)
                args = {"bridge": net.bridge, "topology": topo.name, "specs": specs}
                yield f"fwaccept:{net.bridge}", None if held else Step("fwaccept.add", args)
    if nft.needs_table(topo):
        yield f"firewall:{backend}:{naming.nft_table(topo.name)}", firewall_step(topo, observed, backend)
    for net in dnsmasq_networks(topo):
        yield f"dnsmasq:{net.name}", dnsmasq_step(topo, net, observed, state_dir)


def _forward_accepts(net, topology: str, backend: str, observed: Observed) -> list[list[str]]:
    """Accept rules a network needs in a DROP-policy filter FORWARD (Docker's):
    nat/routed: in and out of the bridge (kvmnet's own table still rejects what it must); the
    iptables backend needs none, its FWD chain is jumped to from the top of FORWARD.
    bridge mode: bridged frames between ports, which pass FORWARD when br_netfilter's
    bridge-nf-call-iptables is 1 (Docker's DROP would cut guests off the LAN)."""
    comment = ["-m", "comment", "--comment", f"kvmnet {topology}"]
    if net.mode in ROUTING_MODES and backend != "iptables":
        return [["-i", net.bridge, *comment, "-j", "ACCEPT"], ["-o", net.bridge, *comment, "-j", "ACCEPT"]]
    if net.mode == "bridge" and observed.sysctls.get(BR_NF_CALL) == "1":
        return [["-i", net.bridge, "-o", net.bridge, *comment, "-j", "ACCEPT"]]
    return []


def _save_line(spec: list[str]) -> str:
    """The rule as `iptables -S FORWARD` prints it."""
    words = [f'"{w}"' if " " in w else w for w in spec]
    return "-A FORWARD " + " ".join(words)


def invert_firewall(step: Step) -> Step:
    a = step.args
    if a["backend"] == "iptables":
        if a.get("previous"):
            return Step("firewall.apply", dict(a, ruleset=a["previous"], previous=None, summary="the rules it had before"))
        return Step("firewall.delete", {"backend": "iptables", "table": a["table"],
                                        "summary": f"chains {a['table']}-*", "command": f"(remove chains {a['table']}-* and their jumps)"})
    if a.get("previous"):
        return Step("firewall.apply", dict(a, ruleset=a["delete"] + a["previous"], previous=None,
                                           summary="the rules it had before", command="nft -f -  # the previous ruleset"))
    return Step("firewall.delete", {"backend": a["backend"], "table": a["table"], "delete": a["delete"],
                                    "summary": f"table inet {a['table']}", "command": f"nft delete table inet {a['table']}"})


def invert_dnsmasq(step: Step) -> Step:
    a = step.args
    if a.get("previous"):
        return Step("dnsmasq.start", dict(a, conf_text=a["previous"], previous=None))
    return Step("dnsmasq.stop", {"network": a["network"], "conf": a["conf"], "pid_file": a["pid_file"],
                                 "leases": a["leases"], "exe": a["exe"], "purge": True})
