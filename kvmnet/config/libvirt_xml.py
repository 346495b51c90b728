"""A libvirt <network> definition -> a commented kvmnet topology (TOML text) that loads.

Everything in the XML is either mapped, noted in a comment (uuid, title), or refused with its
line and element path: each reader marks what it understood, and `_sweep` refuses the rest, so
nothing is dropped without a word. The result is loaded like any topology file; a problem it
has is reported on the XML line that produced the key."""

from __future__ import annotations

import re
from .. import naming
from ..errors import InputError, Problem
from .libvirt_ip import dns, ips
from .libvirt_refusals import reason_for
from .loader import load_text
from .tomlwrite import TomlDoc
from .xmllines import Element, XmlProblem, parse

_FORWARD_MODES = {"nat": "nat", "route": "routed", "open": "routed", "bridge": "bridge"}
_OPEN_NOTE = ("libvirt <forward mode='open'> adds no firewall rules; kvmnet's routed mode adds its "
              "own (forwarding in and out of the subnet only, DHCP/DNS from the bridge only)")
_BRIDGE_NOTE = ("libvirt <forward mode='bridge'> uses a bridge made elsewhere; kvmnet makes it, "
                "enslaves the uplink and moves the uplink's addresses and routes onto it")


def import_text(text: str, file: str) -> str:
    """The topology for the libvirt network in `text`; InputError with one problem per line
    (FILE:LINE: element/path: reason) for whatever kvmnet cannot express."""
    try:
        root = parse(text)
    except XmlProblem as exc:
        raise InputError([Problem(file, exc.line, "", exc.reason)]) from None
    imp = _Import(file)
    imp.network(root)
    imp.sweep(root)
    if imp.problems:
        raise InputError(sorted(imp.problems, key=lambda p: p.line or 0))
    toml = imp.doc.text()
    try:
        load_text(toml, file)
    except InputError as exc:  # the generated keys, placed back on the XML lines they came from
        raise InputError(sorted((imp.place(p) for p in exc.problems), key=lambda p: p.line or 0)) from None
    return toml


def import_file(path: str) -> str:
    try:
        with open(path, "rb") as f:
            raw = f.read(4 * 1024 * 1024 + 1)
    except OSError as exc:
        raise InputError([Problem(path, None, "", exc.strerror or str(exc))]) from None
    if len(raw) > 4 * 1024 * 1024:
        raise InputError([Problem(path, None, "", "file is over 4 MiB; a libvirt network definition is a few KiB")])
    try:
        return import_text(raw.decode("utf-8"), path)
    except UnicodeDecodeError as exc:
        raise InputError([Problem(path, None, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})")]) from None


class _Import:
    def __init__(self, file: str):
        self.file = file
        self.doc = TomlDoc()
        self.problems: list[Problem] = []
        self.origins: dict[tuple, tuple[Element, str | None]] = {}  # TOML key -> (element, attribute)
        self.net: tuple = ()
        self.mode = "isolated"
        self.guest_nics: dict[str, int] = {}  # guest -> NICs so far (several <host>s, one name)
        self.dns_hosts: dict[str, tuple[str, Element]] = {}  # name -> (ip, element)
        self.dns_notes: list[str] = []

    def error(self, el: Element, reason: str, attr: str | None = None) -> None:
        path = f"{el.path}/@{attr}" if attr else el.path
        self.problems.append(Problem(self.file, el.line, path, reason))

    def put(self, table: tuple, key: str, value, el: Element, comment: str | None = None,
            attr: str | None = None) -> None:
        self.doc.put(table, key, value, comment)
        self.origins[table + (key,)] = (el, attr)

    def place(self, p: Problem) -> Problem:
        """A problem of the generated TOML, on the XML element that produced the key."""
        parts = tuple(int(x) if x.isdigit() else x for x in re.findall(r'"(?:[^"\\]|\\.)*"|[^.\[\]]+', p.path))
        parts = tuple(x.strip('"') if isinstance(x, str) else x for x in parts)
        while parts and parts not in self.origins:
            parts = parts[:-1]
        el, attr = self.origins.get(parts, (None, None))
        if el is None:
            return Problem(self.file, None, "", p.reason)
        return Problem(self.file, el.line, f"{el.path}/@{attr}" if attr else el.path, p.reason)

    def network(self, root: Element) -> None:
        if root.tag != "network":
            self.error(root.handle(subtree=True), "the root element must be <network> (a libvirt network definition)")
            return
        root.handle()
        root.attr("connections")  # virsh net-dumpxml of an active network: a count, not configuration
        name = self._names(root)
        if name is None:
            return
        self.mode, uplink = self._forward(root)
        if self.mode is None:
            return
        self.put(self.net, "mode", self.mode, root.find("forward")[0] if root.find("forward") else root,
                 {"isolated": "no <forward>: guests reach each other and the host only"}.get(self.mode))
        if uplink:
            self.put(self.net, "uplink", uplink, root.find("forward")[0], "<forward dev>")
        self._bridge(root)
        for tag, reader in (("mac", self._mac), ("mtu", self._mtu), ("domain", self._domain)):
            for el in root.find(tag)[:1]:
                reader(el.handle())
        ips(self, root)
        for el in root.find("dns")[:1]:
            dns(self, el.handle())
        if self.dns_hosts:
            first = next(iter(self.dns_hosts.values()))[1]
            self.put(self.net, "dns_hosts", {name: ip for name, (ip, _el) in self.dns_hosts.items()}, first)
            for name, (_ip, el) in self.dns_hosts.items():
                self.origins[self.net + ("dns_hosts", name)] = (el, "ip" if el.tag == "host" else None)
            for note in self.dns_notes:
                self.doc.note(self.net, note)

    def _names(self, root: Element) -> str | None:
        """<name> -> the network's and the topology's name; uuid, title, description -> the header."""
        names = root.find("name")
        if not names:
            self.error(root, "no <name>")
            return None
        el = names[0].handle()
        name = el.text.strip()
        if not naming.OBJECT_NAME_RE.fullmatch(name):
            self.error(el, f"{name!r} cannot be a kvmnet network name (1-32 letters, digits, '_' or '-')")
            return None
        self.net = ("networks", name)
        topology = name.replace("-", "_")[:24]
        self.doc.header = [f"kvmnet topology imported from {self.file} (libvirt network {name!r})",
                           "by `kvmnet import libvirt`; check it with `kvmnet validate`, apply it with `kvmnet apply`."]
        for tag in ("uuid", "title", "description"):
            for item in root.find(tag)[:1]:
                text = " ".join(item.handle().text.split())
                self.doc.header.append(f"libvirt {tag} (not kept: kvmnet has no such key): {text}")
        self.put((), "name", topology, el, None if topology == name else f"libvirt name {name!r} as a topology name")
        return name

    def _forward(self, root: Element) -> tuple[str | None, str | None]:
        forwards = root.find("forward")
        if not forwards:
            return "isolated", None
        fwd = forwards[0].handle()
        libvirt_mode, dev = fwd.attr("mode", "nat"), fwd.attr("dev")
        mode = _FORWARD_MODES.get(libvirt_mode)
        if mode is None:
            fwd.handle(subtree=True)
            self.error(fwd, f"<forward mode='{libvirt_mode}'>: macvtap and hostdev modes attach guests to a "
                            "device directly; kvmnet attaches them to bridges only (no direct mode yet)")
            return None, None
        if libvirt_mode == "open":
            self.doc.note(self.net, _OPEN_NOTE)
        if mode == "bridge":
            self.doc.note(self.net, _BRIDGE_NOTE)
            if dev is None:
                self.error(fwd, "bridge mode without dev='UPLINK': kvmnet makes the bridge onto an uplink and "
                                "cannot tell which one (add dev='eth0' or the like)")
        elif dev is not None:
            self.error(fwd, f"libvirt forwards this network through {dev} only; kvmnet forwards it through "
                            "any interface the host routes to", attr="dev")
        for nat in fwd.find("nat")[:1] if mode == "nat" else []:
            nat = nat.handle()
            if nat.attr("ipv6") == "yes":  # NAT66: masquerade the network's IPv6 prefix too
                self.put(self.net, "nat6", True, nat, attr="ipv6")
            for port in nat.find("port")[:1]:
                if (port.handle().attr("start"), port.attr("end")) != ("1024", "65535"):
                    self.error(port, "kvmnet masquerades to source ports 1024-65535 (libvirt's default) only")
        return mode, dev

    def _bridge(self, root: Element) -> None:
        bridges = root.find("bridge")
        if not bridges or bridges[0].attrs.get("name") is None:
            self.error(bridges[0] if bridges else root,
                       "no <bridge name='...'>: libvirt picks one at define time; kvmnet needs it in the file")
            if bridges:
                bridges[0].handle(subtree=True)
            return
        br = bridges[0].handle()
        self.put(self.net, "bridge", br.attr("name"), br, attr="name")
        stp = br.attr("stp")
        if stp is not None:
            if stp not in ("on", "off"):
                self.error(br, f"{stp!r} must be on or off", attr="stp")
            self.put(self.net, "stp", stp == "on", br, attr="stp")
        if br.attr("delay") is not None:
            self._number(br, "delay", "forward_delay", "a number of seconds")

    def _mac(self, el: Element) -> None:
        if self.mode == "bridge":
            self.error(el.handle(subtree=True), "in bridge mode kvmnet's bridge takes its uplink's MAC")
        else:
            self.put(self.net, "mac", el.attr("address") or "", el, "the bridge's own MAC", attr="address")

    def _mtu(self, el: Element) -> None:
        self._number(el, "size", "mtu", "an MTU")

    def _number(self, el: Element, attr: str, key: str, what: str) -> None:
        """A whole-number attribute into the network's `key`, or an error naming it."""
        text = el.attr(attr) or ""
        if not text.isdigit():
            self.error(el, f"{text!r} is not {what}", attr=attr)
        else:
            self.put(self.net, key, int(text), el, attr=attr)

    def _domain(self, el: Element) -> None:
        if self.mode == "bridge":
            self.error(el.handle(subtree=True), "a bridge-mode network serves no DNS (the LAN does)")
            return
        local = el.attr("localOnly", "no")
        self.put(self.net, "domain", el.attr("name") or "", el, None if local == "yes" else
                 "libvirt (localOnly='no') forwards unknown names in the domain upstream; kvmnet answers them locally",
                 attr="name")

    def sweep(self, root: Element) -> None:
        """Refuse, one line each, every element and attribute no reader understood."""
        for el in root.walk():
            if el.quiet:
                continue
            if not el.handled:
                self.error(el, reason_for(el, root))
                el.handle(subtree=True)
                continue
            for attr in el.attrs:
                if attr not in el.used:
                    self.error(el, reason_for(el, root, attr), attr=attr)
            if el.tag not in ("name", "uuid", "title", "description", "hostname") and el.text.strip():
                self.error(el, f"unexpected text {el.text.strip()[:40]!r}")
