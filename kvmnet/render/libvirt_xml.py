"""A kvmnet network -> a libvirt <network> definition (what `virsh net-define` takes).

Pure. What libvirt's network XML cannot say (port forwards, spoof protection) is returned as
(key path, reason) problems rather than dropped; guests appear only through their static
leases (the rest of a guest is domain configuration, not network configuration)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from .. import naming
from ..model import Network, Topology

_FORWARD = {"nat": "nat", "routed": "route", "bridge": "bridge"}
_LEASE = re.compile(r"(\d+)([smhdw]?)", re.ASCII)
_HOURS = {"h": 1, "d": 24, "w": 168}


def refusals(net: Network) -> list[tuple[tuple, str]]:
    """(key path, reason) for what a libvirt network cannot express."""
    path = ("networks", net.name)
    out = []
    if net.forwards:
        out.append((path + ("forwards", 0), "libvirt networks have no port forwards (libvirt users add "
                                          "them with hooks); export the network without them"))
    if net.spoof_protection:
        out.append((path + ("spoof_protection",), "libvirt filters spoofing per guest interface "
                                                  "(nwfilter clean-traffic), not per network"))
    return out


def render(topo: Topology, net: Network) -> str:
    root = ET.Element("network")
    ET.SubElement(root, "name").text = net.name
    root.append(ET.Comment(_comment(f"exported by kvmnet from topology {topo.name} ({topo.path})")))
    others = [g.name for g in topo.guests if any(n.network == net.name and n.ip is None for n in g.nics)]
    if others:
        root.append(ET.Comment(_comment("guests without a static lease here are domain configuration, "
                                        f"not network configuration: {', '.join(others)}")))
    if net.mode in _FORWARD:
        fwd = ET.SubElement(root, "forward", mode=_FORWARD[net.mode])
        if net.uplink:
            fwd.set("dev", net.uplink)
        if net.nat6:
            ET.SubElement(fwd, "nat", ipv6="yes")
    bridge = ET.SubElement(root, "bridge", name=net.bridge)
    if net.mode != "bridge" or not net.stp or net.forward_delay:  # libvirt's bridge mode leaves them to the host
        bridge.set("stp", "on" if net.stp else "off")
        bridge.set("delay", str(net.forward_delay))
    if net.mode != "bridge":  # bridge mode: the bridge takes its uplink's MAC
        ET.SubElement(root, "mac", address=net.mac or naming.bridge_mac(topo.name, net.name))
    if net.mtu:
        ET.SubElement(root, "mtu", size=str(net.mtu))
    if net.domain:  # kvmnet answers every name in its domain itself, as localOnly does
        ET.SubElement(root, "domain", name=net.domain, localOnly="yes")
    if net.dns_hosts:
        dns = ET.SubElement(root, "dns")
        for name, ip in net.dns_hosts:
            ET.SubElement(ET.SubElement(dns, "host", ip=str(ip)), "hostname").text = name
    if net.subnet is not None:
        _ip(ET.SubElement(root, "ip", address=str(net.gateway), prefix=str(net.subnet.prefixlen)), topo, net)
    if net.subnet6 is not None:
        ip6 = ET.SubElement(root, "ip", family="ipv6", address=str(net.gateway6), prefix=str(net.subnet6.prefixlen))
        if net.dhcp6 is not None:
            ET.SubElement(ET.SubElement(ip6, "dhcp"), "range", start=str(net.dhcp6.start), end=str(net.dhcp6.end))
    ET.indent(root, "  ")
    return ET.tostring(root, encoding="unicode") + "\n"


def _ip(ip: ET.Element, topo: Topology, net: Network) -> None:
    if net.tftp_root:
        ET.SubElement(ip, "tftp", root=net.tftp_root)
    if net.dhcp is None:
        return
    dhcp = ET.SubElement(ip, "dhcp")
    rng = ET.SubElement(dhcp, "range", start=str(net.dhcp.start), end=str(net.dhcp.end))
    ET.SubElement(rng, "lease", **_lease(net.dhcp.lease_time))
    for guest in topo.guests:
        for nic in guest.nics:
            if nic.network == net.name and nic.ip is not None:
                ET.SubElement(dhcp, "host", mac=nic.mac, name=guest.name, ip=str(nic.ip))
    if net.bootfile:
        ET.SubElement(dhcp, "bootp", file=net.bootfile)


def _comment(text: str) -> str:
    """XML comments cannot hold '--'."""
    return " " + text.replace("--", "- -") + " "


def _lease(text: str) -> dict:
    """kvmnet's lease time (3600, 30m, 1h, 2d, 1w, infinite) as libvirt's expiry and unit."""
    if text == "infinite":
        return {"expiry": "0"}
    number, unit = _LEASE.fullmatch(text).groups()
    if unit in ("", "s"):
        return {"expiry": number, "unit": "seconds"}
    if unit == "m":
        return {"expiry": number, "unit": "minutes"}
    return {"expiry": str(int(number) * _HOURS[unit]), "unit": "hours"}
