"""What observe() saw on the host: plain values, so plans can be computed and tested offline."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Link:
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


@dataclass(frozen=True)
class Route:
    family: int
    dst: str  # "default" or CIDR
    dev: str
    gateway: str | None = None
    metric: int | None = None
    proto: str = "static"
    scope: int = 0
    prefsrc: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Observed:
    links: dict = field(default_factory=dict)  # name -> Link
    addrs: dict = field(default_factory=dict)  # link name -> frozenset of "addr/prefix"
    routes: tuple = ()  # Route
    sysctls: dict = field(default_factory=dict)  # "net/ipv4/ip_forward" -> "0"; None if absent
    firewall: dict = field(default_factory=dict)  # backend-specific view of kvmnet's own rules
    processes: dict = field(default_factory=dict)  # "dnsmasq:NET" -> {"pid", "conf_text"}
    host_forward: dict = field(default_factory=dict)  # the host's filter FORWARD: policy, kvmnet's accepts
    listeners: dict = field(default_factory=dict)  # "tcp/8080" -> "1234 (python3)", forwarded ports only
    dnsmasq_user: str = "nobody"
    dnsmasq_exe: str = "/usr/sbin/dnsmasq"

    def addrs_of(self, link: str) -> frozenset:
        return self.addrs.get(link, frozenset())

    def to_json(self) -> dict:
        return {"links": {k: asdict(v) for k, v in self.links.items()},
                "addrs": {k: sorted(v) for k, v in self.addrs.items()},
                "routes": [asdict(r) for r in self.routes], "sysctls": self.sysctls,
                "firewall": self.firewall, "processes": self.processes,
                "listeners": self.listeners, "host_forward": self.host_forward, "dnsmasq_user": self.dnsmasq_user, "dnsmasq_exe": self.dnsmasq_exe}

    @classmethod
    def from_json(cls, data: dict) -> "Observed":
        return cls(links={k: Link(**v) for k, v in data.get("links", {}).items()},
                   addrs={k: frozenset(v) for k, v in data.get("addrs", {}).items()},
                   routes=tuple(Route(**r) for r in data.get("routes", [])),
                   sysctls=data.get("sysctls", {}), firewall=data.get("firewall", {}),
                   processes=data.get("processes", {}),
                   listeners=data.get("listeners", {}), host_forward=data.get("host_forward", {}),
                   dnsmasq_user=data.get("dnsmasq_user", "nobody"),
                   dnsmasq_exe=data.get("dnsmasq_exe", "/usr/sbin/dnsmasq"))
