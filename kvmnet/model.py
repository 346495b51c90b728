"""The topology as immutable values. Built only by config/; read by everything else."""

from __future__ import annotations

from functools import cached_property
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network

from .valueclass import field, value

# Network modes, by what kvmnet does for them on the host:
ROUTING_MODES = ("nat", "routed")  # the host forwards the subnet's traffic (ip_forward)
VIRTUAL_MODES = ROUTING_MODES + ("isolated",)  # kvmnet's own subnet: gateway address, dnsmasq, firewall
BRIDGED_MODES = VIRTUAL_MODES + ("bridge",)  # kvmnet builds a bridge (bridge mode: onto an uplink)
MODES = BRIDGED_MODES + ("user", "socket", "direct", "vde", "passt")  # direct: a macvtap per NIC on an
# uplink; vde: a vde_switch kvmnet runs; passt: one passt process per guest NIC (user-mode networking
# without QEMU's slirp)
MACVTAP_MODES = ("bridge", "vepa", "private", "passthrough")


@value
class Dhcp:
    """A network's DHCP range (dnsmasq's dhcp-range); static leases come from the guests' NICs."""

    start: IPv4Address
    end: IPv4Address
    lease_time: str = "1h"


@value
class Dhcp6:
    """A stateful DHCPv6 range (config/ipv6.py); without one, a network's guests use SLAAC only."""

    start: IPv6Address
    end: IPv6Address
    lease_time: str = "1h"


@value
class Forward:
    """A DNAT port forward: host_ports on the host reach guest_ports on guest_ip (IPv4) and/or
    guest_ip6 (IPv6, nat6 networks only): at least one is set."""

    proto: str
    host_ports: tuple[int, int]  # inclusive range; (p, p) for one port
    guest_ip: IPv4Address | None  # None on passt networks: the guest's own passt forwards it
    guest_ports: tuple[int, int]
    guest: str | None = None  # the guest name when given by name
    host_addr: IPv4Address | IPv6Address | None = None  # restrict to one host address (e.g. 127.0.0.1)
    index: int = 0  # position in the file's forwards array, for messages
    guest_ip6: IPv6Address | None = None


@value
class HostFwd:
    """QEMU user-mode hostfwd=[proto]:[host_addr]:host_port-[guest_addr]:guest_port."""

    proto: str
    host_addr: IPv4Address | None
    host_port: int
    guest_addr: IPv4Address | None
    guest_port: int


@value
class GuestFwd:
    """QEMU user-mode guestfwd=tcp:server_addr:server_port-target."""

    server_addr: IPv4Address
    server_port: int
    target: str  # "cmd:..." or "HOST:PORT"


@value
class UserNet:
    """QEMU user-mode networking (slirp): its subnet, host and DNS addresses, forwards."""

    net: IPv4Network = IPv4Network("10.0.2.0/24")
    host: IPv4Address = IPv4Address("10.0.2.2")
    dns: IPv4Address = IPv4Address("10.0.2.3")
    dhcpstart: IPv4Address = IPv4Address("10.0.2.15")
    restrict: bool = False
    hostname: str | None = None
    domainname: str | None = None
    hostfwd: tuple[HostFwd, ...] = ()
    guestfwd: tuple[GuestFwd, ...] = ()
    tftp: str | None = None
    bootfile: str | None = None
    smb: str | None = None
    ipv6: bool | None = None
    ipv6_net: IPv6Network | None = None  # ipv6-net/-host/-dns: all set when the file gives any
    ipv6_host: IPv6Address | None = None
    ipv6_dns: IPv6Address | None = None


@value
class SocketNet:
    """A QEMU socket network: guests joined by TCP, UDP or multicast, no host link."""

    transport: str  # tcp | udp | mcast
    address: IPv4Address  # tcp/udp: where the listener/peers are; mcast: the group
    port: int  # tcp/mcast: the port; udp: the first guest's port (the second uses port + 1)
    localaddr: IPv4Address | None = None  # mcast: the interface address to send from


@value
class PasstNet:
    """What every guest NIC's own passt offers on a passt network (its forwards are on the
    Network, per guest). None: passt's default (copied from the host's default route)."""

    ipv4: bool = True
    ipv6: bool = True
    address: IPv4Interface | None = None  # the guest's IPv4 address and prefix (-a, -n)
    gateway: IPv4Address | None = None  # -g
    address6: IPv6Address | None = None
    gateway6: IPv6Address | None = None
    dns: tuple[IPv4Address | IPv6Address, ...] | None = None  # (): no DNS servers offered
    search: tuple[str, ...] | None = None  # (): no search list offered
    dns_forward: IPv4Address | None = None  # queries to this address go to the host's resolver
    map_gateway: bool = True  # False: --no-map-gw (the gateway address is not the host)
    mtu: int | None = None


@value
class Bandwidth:
    """A rate limit as libvirt names its directions: inbound is traffic towards the guest(s)."""

    inbound: int | None = None  # bits per second
    outbound: int | None = None
    burst: int | None = None  # bytes; None: render/tc.py's default for the rate


@value
class Network:
    """[networks.NAME]: one network of a topology (`mode` says which kind)."""

    name: str
    mode: str
    bridge: str | None = None
    subnet: IPv4Network | None = None
    gateway: IPv4Address | None = None
    stp: bool = True
    forward_delay: int = 0  # seconds
    mtu: int | None = None
    mac: str | None = None  # the bridge's own MAC (nat/routed/isolated); None: naming.bridge_mac
    uplink: str | None = None
    domain: str | None = None
    dns_hosts: tuple[tuple[str, IPv4Address | IPv6Address], ...] = ()  # A and AAAA records
    dhcp: Dhcp | None = None
    forwards: tuple[Forward, ...] = ()
    tftp_root: str | None = None
    bootfile: str | None = None
    spoof_protection: bool = False
    user: UserNet | None = None
    socket: SocketNet | None = None
    # IPv6 (config/ipv6.py): subnet6 turns it on; nat6 masquerades it on nat networks
    subnet6: IPv6Network | None = None
    gateway6: IPv6Address | None = None
    nat6: bool = False
    dhcp6: Dhcp6 | None = None
    bandwidth: Bandwidth | None = None  # on the bridge device: shared by the network's routed traffic
    macvtap_mode: str | None = None  # direct networks: one of MACVTAP_MODES
    host_macvlan: str | None = None  # direct networks: the host's own macvlan on the uplink (bridge mode)
    host_address: str | None = None  # an address (CIDR) for that macvlan
    allow_unprivileged: bool = False  # an `allow BRIDGE` line for qemu-bridge-helper
    vde_join: str | None = None  # vde mode: the bridge its switch joins through a tap (vde_switch -t)

    @property
    def gateway6_interface(self) -> IPv6Interface | None:
        if self.gateway6 is None or self.subnet6 is None:
            return None
        return IPv6Interface(f"{self.gateway6}/{self.subnet6.prefixlen}")
    passt: PasstNet | None = None

    @property
    def gateway_interface(self) -> IPv4Interface | None:
        if self.gateway is None or self.subnet is None:
            return None
        return IPv4Interface(f"{self.gateway}/{self.subnet.prefixlen}")

    @property
    def bridged(self) -> bool:
        return self.mode in BRIDGED_MODES


@value
class NicTuning:
    """The seed's per-NIC QEMU options (5.2, 5.5); None: QEMU's default."""
    sndbuf: int | None = None  # tap send buffer, bytes (0: unlimited)
    vnet_hdr: bool | None = None  # tap virtio-net headers
    vhost: str = "auto"  # auto (on where /dev/vhost-net exists, virtio only), on, off
    vectors: int | None = None  # virtio MSI-X vectors
    capture: str | None = None  # pcap file QEMU writes every frame of this NIC to (filter-dump)


@value
class Nic:
    """One NIC of a guest on one network."""

    network: str
    mac: str  # lowercase 52:54:00:12:34:56 form (compared as a string); config/derive.py picks one if the file gives none
    ip: IPv4Address | None = None
    model: str = "virtio-net-pci"
    tap: str | None = None  # derived by naming.tap_name for bridged networks
    ip6: IPv6Address | None = None  # a static DHCPv6 address (and AAAA record)
    bandwidth: Bandwidth | None = None  # on the tap
    tuning: NicTuning = NicTuning()


@value
class Guest:
    """[guests.NAME]: a guest and its NICs."""

    name: str
    nics: tuple[Nic, ...] = ()
    # what `kvmnet run` needs beyond the network; all optional
    memory: int = 512  # MiB
    cpus: int = 1
    kernel: str | None = None
    initrd: str | None = None
    append: str | None = None
    disk: str | None = None
    qemu_args: tuple[str, ...] = ()
    queues: int | None = None  # multiqueue virtio-net on tap NICs


@value
class HostEntry:
    """[hosts.NAME]: one machine of a multi-host topology, by its address on the underlay."""

    name: str
    underlay: IPv4Address


@value
class Vxlan:
    """[networks.N.vxlan] (and the network's gateway_host): the network stretched over hosts."""

    vni: int
    control: str = "static"  # static (head-end replication to every peer) | evpn (FRR's BGP)
    port: int = 4789
    hosts: tuple[str, ...] = ()  # the hosts the network spans (the file says all by default)
    gateway_host: str | None = None  # where the gateway address, dnsmasq, NAT and forwards live


@value
class Overlay:
    """The multi-host part of a topology: config/hosts.py reads it; engine/overlay.py turns the
    whole topology into this host's part (`me` set) before anything is planned."""

    hosts: tuple[HostEntry, ...] = ()
    vxlans: tuple[tuple[str, Vxlan], ...] = ()  # (network name, its Vxlan)
    guest_hosts: tuple[tuple[str, str], ...] = ()  # (guest name, host name)
    me: str | None = None  # this host, once decided (--host, or the local underlay address)
    local: bool = False  # the topology holds this host's part only (engine/overlay.localize)

    def vxlan(self, network: str) -> Vxlan | None:
        return dict(self.vxlans).get(network)

    def host(self, name: str) -> HostEntry:
        return next(h for h in self.hosts if h.name == name)


@value
class Topology:
    """A whole topology file, validated."""

    name: str
    path: str
    networks: tuple[Network, ...] = ()
    guests: tuple[Guest, ...] = ()
    firewall: str = "auto"  # auto | nftables | iptables
    overlay: Overlay | None = None  # [hosts] and stretched networks: see engine/overlay.py
    # the file's text as loaded: the record keeps it, so `kvmnet try` can put back exactly the
    # version that was applied even when the file has since been edited in place
    source: str = field(default="", compare=False, repr=False)

    def network(self, name: str) -> Network:
        """The network of that name (KeyError if none): planning asks once per NIC."""
        return self._networks_by_name[name]

    @cached_property  # (kept in the instance's __dict__, outside the fields: not compared, not encoded)
    def _networks_by_name(self) -> dict[str, Network]:
        return {n.name: n for n in self.networks}

    def guest(self, name: str) -> Guest:
        return next(g for g in self.guests if g.name == name)
