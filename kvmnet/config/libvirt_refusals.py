"""Why kvmnet refuses a libvirt element or attribute that no reader understood: one reason
per known feature, a plain one for the rest."""

from __future__ import annotations

from .xmllines import Element

_NO_DIRECT = "kvmnet attaches guests to bridges only (no direct or hostdev mode yet)"
# by path below <network>
ELEMENTS = {
    "virtualport": "Open vSwitch / 802.1Qbh virtual ports: kvmnet builds Linux bridges only",
    "portgroup": "port groups (per-guest VLAN, bandwidth and virtualport profiles): kvmnet has none",
    "bandwidth": "traffic shaping: kvmnet does not shape traffic",
    "vlan": "VLAN tagging: kvmnet does not tag VLANs",
    "route": "static routes through a guest: kvmnet adds no routes",
    "metadata": "application metadata: a kvmnet topology has no place for it",
    "forward/pf": f"an SR-IOV physical function (hostdev pool): {_NO_DIRECT}",
    "forward/interface": f"a device pool (macvtap or hostdev): {_NO_DIRECT}",
    "forward/address": f"a PCI device pool (hostdev): {_NO_DIRECT}",
    "forward/driver": f"a hostdev driver: {_NO_DIRECT}",
    "forward/nat/address": "NAT to an address range: kvmnet masquerades to the outgoing interface's address",
    "dns/forwarder": ("upstream DNS servers: kvmnet has no key for them; its dnsmasq forwards to the "
                      "servers in the host's /etc/resolv.conf (isolated networks: to none)"),
    "dns/txt": "DNS TXT records: kvmnet serves A records only (dns_hosts)",
    "dns/srv": "DNS SRV records: kvmnet serves A records only (dns_hosts)",
    "ip/dhcp/host/lease": "a per-host lease time: kvmnet has one lease time per network",
}
ATTRIBUTES = {
    ("network", "ipv6"): "IPv6 between guests (ipv6='yes') is not yet supported",
    ("network", "trustGuestRxFilters"): "guest receive filters apply to macvtap, which kvmnet does not use",
    ("bridge", "macTableManager"): "libvirt-managed MAC tables: the kernel's bridge learns MACs itself",
    ("bridge", "zone"): "firewalld zones: kvmnet keeps its rules in its own nftables table",
    ("forward", "managed"): f"hostdev devices: {_NO_DIRECT}",
    ("nat", "ipv6"): "NAT for IPv6 is not yet supported",
    ("dns", "forwardPlainNames"): "kvmnet's dnsmasq never forwards plain names (domain-needed)",
    ("domain", "register"): "registering the domain with systemd-resolved: kvmnet does not",
    ("ip", "localPtr"): "local reverse lookups only: kvmnet has no key for them",
    ("host", "id"): "DHCP client ids: kvmnet pins leases by MAC",
    ("bootp", "server"): "a separate boot server: kvmnet's own dnsmasq serves the boot file",
}


def reason_for(el: Element, root: Element, attr: str | None = None) -> str:
    if attr is not None:
        return "not supported: " + ATTRIBUTES.get((el.tag, attr), "kvmnet has no equivalent")
    below = el.path.split("/", 1)[1] if "/" in el.path else el.path
    if below in ELEMENTS:
        return "not supported: " + ELEMENTS[below]
    if ":" in el.tag:
        return "not supported: namespaced extensions (e.g. dnsmasq:options) have no kvmnet equivalent"
    if _has_handled_twin(el, root):
        return f"a second <{el.tag}>: kvmnet reads one"
    return "not supported: kvmnet has no equivalent"


def _has_handled_twin(el: Element, root: Element) -> bool:
    for parent in root.walk():
        if el in parent.children:
            return any(c is not el and c.tag == el.tag and c.handled for c in parent.children)
    return False
