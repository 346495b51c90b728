"""What observe() saw on the host: plain values, so plans can be computed and tested offline."""

from __future__ import annotations


from .valueclass import asdict, field, value


@value
class Link:
    """One network interface as the kernel lists it."""

    name: str
    index: int
    kind: str  # "bridge", "tun", "veth", "" for a plain NIC
    mtu: int
    up: bool
    master: str | None
    mac: str
    stp: bool | None = None  # bridges only
    forward_delay: int | None = None  # seconds, bridges only
    group: int = 0
    multi_queue: bool | None = None  # taps only (IFF_MULTI_QUEUE); None where unknown


@value
class Address:
    """One address of a link with what `ip addr add` can set, so it can be moved exactly."""
    cidr: str  # our address / prefix length
    label: str | None = None  # IPv4: the label when it is not the link's own name
    broadcast: str | None = None
    peer: str | None = None  # the other end of a point-to-point address
    scope: int = 0
    flags: int = 0  # the ones a user sets (noprefixroute, nodad, ...); the kernel's own are dropped
    metric: int | None = None
    valid_lft: int | None = None  # seconds left when read; None: forever
    preferred_lft: int | None = None
    read_at: float = 0.0  # time.monotonic() when the lifetimes were read

    @property
    def family(self) -> int:
        return 6 if ":" in self.cidr else 4

    def as_dict(self) -> dict:
        """Only what differs from a plain address (old records and steps keep their shape)."""
        return {k: v for k, v in asdict(self).items() if k == "cidr" or v != _PLAIN[k]}


_PLAIN = asdict(Address(""))


def address(value) -> Address:
    """An Address from a CIDR string (fake hosts, old records) or its as_dict()."""
    return Address(value) if isinstance(value, str) else value if isinstance(value, Address) else Address(**value)


@value
class Route:
    """One route, with what `ip route add` can set."""

    family: int
    dst: str  # "default" or CIDR
    dev: str
    gateway: str | None = None
    metric: int | None = None
    proto: str = "static"
    scope: int = 0
    prefsrc: str | None = None
    table: int = 254  # main

    def as_dict(self) -> dict:
        return asdict(self)


@value
class Observed:
    """What observe() read of the host: everything a plan compares against."""

    links: dict = field(default_factory=dict)  # name -> Link
    addrs: dict = field(default_factory=dict)  # link name -> Addresses in the kernel's order (or CIDR strings)
    routes: tuple = ()  # Route
    sysctls: dict = field(default_factory=dict)  # "net/ipv4/ip_forward" -> "0"; None if absent
    firewall: dict = field(default_factory=dict)  # backend-specific view of kvmnet's own rules
    processes: dict = field(default_factory=dict)  # "dnsmasq:NET" -> {"pid", "conf_text"}
    host_forward: dict = field(default_factory=dict)  # the host's filter FORWARD: policy, kvmnet's accepts
    listeners: dict = field(default_factory=dict)  # "tcp/8080" -> "1234 (python3)", forwarded ports only
    tc: dict = field(default_factory=dict)  # link -> {"root": {kind, rate (bytes/s), burst}, "redirect": ifb}
    dnsmasq_user: str = "nobody"
    dnsmasq_exe: str = "/usr/sbin/dnsmasq"
    firewalld: dict = field(default_factory=dict)  # {} unless firewalld runs: its zones, the bridges' zones
    qemu_acl: dict = field(default_factory=dict)  # {"dir": conf dir, "allowed": {bridge: topology}}
    overlay: dict = field(default_factory=dict)  # VXLAN devices, flooding lists, FRR: host/vxlan.py, host/frr.py

    def addrs_of(self, link: str) -> frozenset:
        """The link's addresses as "addr/prefix" strings."""
        return frozenset(address(a).cidr for a in self.addrs.get(link, ()))

    def addresses_of(self, link: str) -> tuple:
        """The link's Addresses in the order the kernel lists them (sorted when it was not told)."""
        raw = self.addrs.get(link, ())
        return tuple(map(address, sorted(raw) if isinstance(raw, (set, frozenset)) else raw))

    def to_json(self) -> dict:
        return {"links": {k: asdict(v) for k, v in self.links.items()},
                "addrs": {k: [a.as_dict() for a in self.addresses_of(k)] for k in self.addrs},
                "routes": [asdict(r) for r in self.routes], "sysctls": self.sysctls,
                "firewall": self.firewall, "processes": self.processes,
                "listeners": self.listeners, "host_forward": self.host_forward, "dnsmasq_user": self.dnsmasq_user, "dnsmasq_exe": self.dnsmasq_exe,
                "tc": self.tc, **({"firewalld": self.firewalld} if self.firewalld else {}),
                **({"qemu_acl": self.qemu_acl} if self.qemu_acl else {}),
                **({"overlay": self.overlay} if self.overlay else {})}

    @classmethod
    def from_json(cls, data: dict) -> "Observed":
        return cls(links={k: Link(**v) for k, v in data.get("links", {}).items()},
                   addrs={k: tuple(map(address, v)) for k, v in data.get("addrs", {}).items()},
                   routes=tuple(Route(**r) for r in data.get("routes", [])),
                   sysctls=data.get("sysctls", {}), firewall=data.get("firewall", {}),
                   processes=data.get("processes", {}),
                   listeners=data.get("listeners", {}), host_forward=data.get("host_forward", {}),
                   dnsmasq_user=data.get("dnsmasq_user", "nobody"),
                   dnsmasq_exe=data.get("dnsmasq_exe", "/usr/sbin/dnsmasq"),
                   firewalld=data.get("firewalld", {}), tc=data.get("tc", {}),
                   qemu_acl=data.get("qemu_acl", {}),
                   overlay=data.get("overlay", {}))
