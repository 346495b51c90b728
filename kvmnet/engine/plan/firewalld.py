"""Facts about firewalld, when it runs: each nat/routed/isolated bridge bound to a zone kvmnet
owns, as libvirt binds its bridges to its `libvirt` zone. Pure.

A firewalld default zone such as `drop` otherwise blocks DHCP and DNS to the host and the
guests' forwarded traffic: nftables evaluates firewalld's base chains as well as kvmnet's own.
Two zones, so no zone kvmnet shares is ever changed to suit one network: `kvmnet` (DHCP,
DHCPv6, DNS) and `kvmnet-tftp` (the same and TFTP) for networks with `tftp_root`. A zone is a
host-wide fact (SHARED_KEYS): the last topology that needs it deletes it on destroy.

A bridge the admin put in some other zone is left there (the fact holds): kvmnet never moves it
back. Without firewalld nothing is wanted, and what the record holds of it is not undone (its
runtime bindings are gone with it).
"""

from __future__ import annotations

from ...model import Topology, VIRTUAL_MODES
from ...observed import Observed
from ..steps import Step
from .facts import Facts

ZONE, TFTP_ZONE = "kvmnet", "kvmnet-tftp"
ZONES = (ZONE, TFTP_ZONE)
SERVICES = {ZONE: ["dhcp", "dhcpv6", "dns"], TFTP_ZONE: ["dhcp", "dhcpv6", "dns", "tftp"]}
SHARED_KEYS = tuple(f"firewalld:zone:{z}" for z in ZONES)


def _zone(net) -> str:
    return TFTP_ZONE if net.tftp_root else ZONE


def bind_key(bridge: str, zone: str) -> str:
    """A bridge's binding to one of kvmnet's zones: a fact of its own per zone, so the record's
    undo always names the zone the bridge is in (`kvmnet` keeps the key records always had)."""
    return f"firewalld:bind:{bridge}" if zone == ZONE else f"firewalld:bind:{bridge}:{zone}"


def bridges(topo: Topology) -> list[str]:
    """The bridges firewalld's zones matter for (observe reads their bindings)."""
    return [n.bridge for n in topo.networks if n.mode in VIRTUAL_MODES]


def _unbind(step: Step, observed: Observed | None = None) -> Step:
    return Step("firewalld.unbind", dict(step.args))


def _delete_zone(step: Step, observed: Observed | None = None) -> Step:
    return Step("firewalld.zone.del", {"zone": step.args["zone"]})


def _rebind(step: Step, observed: Observed | None = None) -> Step:
    return Step("firewalld.bind", {"bridge": step.args["bridge"], "zone": step.args["zone"]})


def _add_zone(step: Step, observed: Observed | None = None) -> Step:
    zone = step.args["zone"]
    return Step("firewalld.zone.add", {"zone": zone, "services": SERVICES[zone]})


# both ways: a create's undo is recorded, and a removal (a recorded undo run) is rolled back
UNDO = {"firewalld.bind": _unbind, "firewalld.zone.add": _delete_zone,
        "firewalld.unbind": _rebind, "firewalld.zone.del": _add_zone}


def migrate(record) -> None:
    """Records written before a binding was a fact per zone hold `firewalld:bind:<bridge>` for
    a bridge in kvmnet-tftp too (their undo names the zone): give such an entry its key now, so
    a plan does not take the binding it wants for one it must remove."""
    def key(k: str, undo) -> str:
        if k.startswith("firewalld:bind:") and k.count(":") == 2 and undo and undo["op"] == "firewalld.unbind":
            return bind_key(undo["args"]["bridge"], undo["args"]["zone"])
        return k

    if any(k != key(k, u) for k, u in record.entries if k.startswith("firewalld:bind:")):
        record.entries = [[key(k, u), u] for k, u in record.entries]


def zones(facts: Facts, topo: Topology, record_keys=frozenset()) -> None:
    fw = facts.obs.firewalld
    if not fw.get("running"):
        for key in record_keys:  # kept as they are: nothing to undo while firewalld is away
            if key.startswith("firewalld:"):
                facts.want(key, None)
        return
    nets = [n for n in topo.networks if n.mode in VIRTUAL_MODES]
    missing = {z for z in (_zone(n) for n in nets) if not (z in fw.get("zones", ()) and z in fw.get("permanent", ()))}
    for zone in sorted(missing):  # first: creating one reloads firewalld, which drops runtime bindings
        do = Step("firewalld.zone.add", {"zone": zone, "services": SERVICES[zone]})
        facts.want(f"firewalld:zone:{zone}", do, _delete_zone(do))
    # a zone an earlier kvmnet made, without its policy: zone.add adds just that; its undo must
    # not delete a zone other topologies' bridges are in (the last to go deletes both)
    for zone in sorted({_zone(n) for n in nets} & set(fw.get("unpolicied", ())) - missing):
        facts.want(f"firewalld:zone:{zone}", Step("firewalld.zone.add", {"zone": zone, "services": SERVICES[zone]}), None)
    for net in nets:
        zone = _zone(net)
        facts.want(f"firewalld:zone:{zone}", None)
        bound = fw.get("bindings", {}).get(net.bridge, "")
        bkey = bind_key(net.bridge, zone)
        # in its zone, or one the admin chose (bind leaves those alone); in kvmnet's other zone,
        # the network's zone changed: the old binding's fact is not wanted, and its recorded
        # undo (removals run first) takes the bridge out of that zone, so bind can put it in
        if bound and not missing and (bound == zone or bound not in ZONES):
            facts.want(bkey, None)
        else:
            do = Step("firewalld.bind", {"bridge": net.bridge, "zone": zone})
            facts.want(bkey, do, _unbind(do))
