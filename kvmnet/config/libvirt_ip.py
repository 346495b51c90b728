"""libvirt's <ip> (subnet, gateway, DHCP, static leases, TFTP) and <dns> (records) -> kvmnet
keys. `imp` is libvirt_xml's importer: it holds the document, the origins and the problems."""

from __future__ import annotations

from ipaddress import IPv4Interface, IPv6Interface

from .. import naming
from .xmllines import Element

_LEASE_UNITS = {"seconds": "", "minutes": "m", "hours": "h"}


def ips(imp, root: Element) -> None:
    """One IPv4 and one IPv6 <ip> per network (kvmnet's model has one subnet of each family)."""
    seen, seen6 = None, None
    for el in root.find("ip"):
        if el.attrs.get("family") == "ipv6" or ":" in el.attrs.get("address", ""):
            if imp.mode == "bridge":
                imp.error(el.handle(subtree=True), "a bridge-mode network has no address of its own")
            elif seen6 is not None:
                imp.error(el.handle(subtree=True), f"a second IPv6 prefix on one bridge (the first is on line "
                                                   f"{seen6.line}): a kvmnet network has one `subnet6`")
            else:
                seen6 = el
                _ip6(imp, el.handle())
        elif imp.mode == "bridge":
            imp.error(el.handle(subtree=True), "a bridge-mode network has no address of its own (the LAN's DHCP serves guests)")
        elif seen is not None:
            imp.error(el.handle(subtree=True), f"a second IPv4 subnet on one bridge (the first is on line {seen.line}): "
                                               "a kvmnet network has one subnet")
        else:
            seen = el
            _ip(imp, el.handle())


def _ip(imp, el: Element) -> None:
    el.attr("family")
    address, netmask, prefix = el.attr("address"), el.attr("netmask"), el.attr("prefix")
    if address is None or (netmask is None) == (prefix is None):
        imp.error(el, "needs address= and one of netmask= or prefix=")
        return
    if not _gateway(imp, el, IPv4Interface, f"{address}/{netmask or prefix}", ("subnet", "gateway"),
                    "an IPv4 address and netmask", "<ip address netmask|prefix>: the gateway's subnet"):
        return
    for tftp in el.find("tftp")[:1]:
        imp.put(imp.net, "tftp_root", tftp.handle().attr("root") or "", tftp, attr="root")
        if not el.find("dhcp"):
            imp.error(tftp, "kvmnet's dnsmasq serves TFTP only on networks with DHCP")
    for dhcp in el.find("dhcp")[:1]:
        _dhcp(imp, dhcp.handle())


def _gateway(imp, el: Element, kind, text: str, keys: tuple[str, str], what: str, note: str) -> bool:
    """The gateway's address and its subnet from `text` (ADDRESS/MASK), or an error naming it."""
    try:
        iface = kind(text)
    except ValueError:
        imp.error(el, f"{text} is not {what}")
        return False
    imp.put(imp.net, keys[0], str(iface.network), el, note)
    imp.put(imp.net, keys[1], str(iface.ip), el)
    return True


def _ip6(imp, el: Element) -> None:
    """<ip family='ipv6' address prefix> with an optional <dhcp><range>: subnet6, gateway6, dhcp6."""
    el.attr("family")
    if not _gateway(imp, el, IPv6Interface, f"{el.attr('address')}/{el.attr('prefix')}", ("subnet6", "gateway6"),
                    "an IPv6 address and prefix length", "<ip family='ipv6'>: routed by default, as libvirt does"):
        return
    for dhcp in el.find("dhcp")[:1]:
        dhcp = dhcp.handle()
        ranges = dhcp.find("range")
        for extra in ranges[1:]:
            imp.error(extra.handle(subtree=True), "a second DHCPv6 range: a kvmnet network has one")
        if ranges:
            rng = ranges[0].handle()
            imp.put(imp.net + ("dhcp6",), "start", rng.attr("start") or "", rng, attr="start")
            imp.put(imp.net + ("dhcp6",), "end", rng.attr("end") or "", rng, attr="end")
        for host in dhcp.find("host"):
            imp.error(host.handle(subtree=True), "static DHCPv6 leases by DUID/name are not imported yet: "
                                                 "give the guest's NIC `ip6 = ...` in the topology")


def _dhcp(imp, el: Element) -> None:
    ranges = el.find("range")
    for extra in ranges[1:]:
        imp.error(extra.handle(subtree=True), f"a second DHCP range (the first is on line {ranges[0].line}): "
                                              "a kvmnet network has one")
    if ranges:
        _range(imp, ranges[0].handle())
    elif el.find("host"):
        imp.error(el, "static leases without a <range>: kvmnet serves DHCP, static leases included, "
                      "only on networks with a range")
    for host in el.find("host"):
        _host(imp, host.handle())
    for bootp in el.find("bootp")[:1]:
        imp.put(imp.net, "bootfile", bootp.handle().attr("file") or "", bootp, "<bootp file>: served by kvmnet's dnsmasq",
                attr="file")


def _range(imp, el: Element) -> None:
    table = imp.net + ("dhcp",)
    imp.put(table, "start", el.attr("start") or "", el, attr="start")
    imp.put(table, "end", el.attr("end") or "", el, attr="end")
    for lease in el.find("lease")[:1]:
        expiry, unit = lease.handle().attr("expiry") or "", lease.attr("unit", "minutes")
        if not expiry.isdigit() or unit not in _LEASE_UNITS:
            imp.error(lease, f"expiry={expiry!r} unit={unit!r}: expiry must be a number, unit seconds, minutes or hours")
            continue
        value = "infinite" if int(expiry) == 0 else f"{int(expiry)}{_LEASE_UNITS[unit]}"
        imp.put(table, "lease_time", value, lease, "<lease " + " ".join(f"{k}='{v}'" for k, v in lease.attrs.items()) + ">")


def _host(imp, el: Element) -> None:
    """mac + ip: a guest with a static lease; name + ip without mac: a DNS record only."""
    mac, name, ip = el.attr("mac"), el.attr("name"), el.attr("ip")
    if mac is not None and ip is not None:
        _guest(imp, el, mac, name, ip)
    elif name is not None and ip is not None:
        _dns_host(imp, el, name, ip, "<host> without mac: a DNS record only")
    else:
        imp.error(el, "needs mac and ip (a static lease) or name and ip (a DNS record); kvmnet has no "
                      "name-only or address-less leases")


def _guest(imp, el: Element, mac: str, name: str | None, ip: str) -> None:
    note = f"<host> on line {el.line}: a static lease"
    if name is None:
        name = "host-" + ip.replace(".", "-").replace(":", "-")
        note += " (libvirt's host has no name: kvmnet names the guest, and DNS knows it by that name)"
    elif not naming.OBJECT_NAME_RE.fullmatch(name):
        imp.error(el, f"{name!r} cannot be a kvmnet guest name (1-32 letters, digits, '_' or '-')", attr="name")
        return
    guest = ("guests", name)
    index = imp.guest_nics.get(name, 0)
    imp.guest_nics[name] = index + 1
    if index == 0:
        imp.doc.note(guest, note)
        imp.origins[guest] = (el, "name")
    nic = guest + ("nics", index)
    imp.put(nic, "network", imp.net[1], el)
    imp.put(nic, "mac", mac, el, attr="mac")
    imp.put(nic, "ip", ip, el, attr="ip")


def dns(imp, el: Element) -> None:
    if imp.mode == "bridge":
        imp.error(el.handle(subtree=True), "a bridge-mode network serves no DNS (the LAN does)")
        return
    if el.attr("enable", "yes") != "yes":
        imp.error(el, "kvmnet's dnsmasq always answers DNS on the bridge; it has no key to turn DNS off", attr="enable")
    for host in el.find("host"):
        ip = host.handle().attr("ip") or ""
        names = host.find("hostname")
        if not names:
            imp.error(host, "a DNS <host> needs at least one <hostname>")
        for hostname in names:
            _dns_host(imp, hostname.handle(), hostname.text.strip(), ip, None)


def _dns_host(imp, el: Element, name: str, ip: str, comment: str | None) -> None:
    hosts = imp.dns_hosts
    if name in hosts:
        imp.error(el, f"{name} is also defined on line {hosts[name][1].line}; kvmnet has one address per name")
        return
    hosts[name] = (ip, el)  # a bad name or address: the loader says so, placed on this element
    if comment:
        imp.dns_notes.append(f"dns_hosts.{name}: {comment} (line {el.line})")
