"""QEMU network arguments for a guest's NICs. Pure: the caller says what the host offers.

One NIC renders to a short list of argv words (never a shell string): a backend (`-netdev
tap|user|socket,...`) and a front end (`-device MODEL,netdev=ID,mac=MAC`), or the seed's legacy
pair `-net nic,model=...,macaddr=... -net tap,...`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError
from ..model import Guest, Network, Nic, Topology

# `-net nic,model=` takes the short names
_LEGACY_MODELS = {"virtio-net-pci": "virtio", "virtio-net": "virtio"}


@dataclass(frozen=True)
class HostOffers:
    vhost_net: bool = False  # /dev/vhost-net exists
    ifup: str = "kvmnet-ifup"  # paths QEMU runs with --hooks
    ifdown: str = "kvmnet-ifdown"


def _opts(kind: str, pairs: list[tuple[str, object]]) -> str:
    """kind,key=value,... in QEMU's option syntax (commas in values are doubled)."""
    words = [kind] + [f"{k}={str(v).replace(',', ',,')}" for k, v in pairs if v is not None]
    return ",".join(words)


def _on(flag: bool) -> str:
    return "on" if flag else "off"


def _user(net: Network) -> list[tuple[str, object]]:
    u = net.user
    pairs: list[tuple[str, object]] = [("net", u.net), ("host", u.host), ("dns", u.dns), ("dhcpstart", u.dhcpstart)]
    if u.restrict:
        pairs.append(("restrict", "on"))
    pairs += [("hostname", u.hostname), ("domainname", u.domainname), ("tftp", u.tftp),
              ("bootfile", u.bootfile), ("smb", u.smb)]
    if u.ipv6:
        # QEMU reads a lone ipv6=on as "IPv6 only" and then refuses the net/host/dns above
        pairs.append(("ipv4", "on"))
    if u.ipv6 is not None:
        pairs.append(("ipv6", _on(u.ipv6)))
    if u.ipv6_net is not None:
        pairs += [("ipv6-net", u.ipv6_net), ("ipv6-host", u.ipv6_host), ("ipv6-dns", u.ipv6_dns)]
    for f in u.hostfwd:
        pairs.append(("hostfwd", f"{f.proto}:{f.host_addr or ''}:{f.host_port}-{f.guest_addr or ''}:{f.guest_port}"))
    for g in u.guestfwd:
        pairs.append(("guestfwd", f"tcp:{g.server_addr}:{g.server_port}-{g.target}"))
    return pairs


def _socket(topo: Topology, net: Network, guest: Guest) -> list[tuple[str, object]]:
    """Roles by guest order in the file: the first guest on a tcp link listens, the second
    connects; on a udp link each sends to the other's port (port, port + 1)."""
    s = net.socket
    members = [g.name for g in topo.guests if any(n.network == net.name for n in g.nics)]
    rank = members.index(guest.name)
    if s.transport == "tcp":
        return [("listen" if rank == 0 else "connect", f"{s.address}:{s.port}")]
    if s.transport == "udp":
        mine, peer = s.port + rank, s.port + 1 - rank
        return [("udp", f"{s.address}:{peer}"), ("localaddr", f"{s.address}:{mine}")]
    return [("mcast", f"{s.address}:{s.port}"), ("localaddr", s.localaddr)]


def direct_fd(index: int) -> int:
    """The descriptor NIC `index` of a direct network has in QEMU: 3 and up, past stdio."""
    return 3 + index


def nic_args(topo: Topology, guest: Guest, index: int, nic: Nic, syntax: str, hooks: bool,
             offers: HostOffers) -> list[str]:
    net = topo.network(nic.network)
    ident = f"net{index}"
    if net.bridged:
        kind = "tap"
        script = [("script", offers.ifup), ("downscript", offers.ifdown)] if hooks else [("script", "no"), ("downscript", "no")]
        pairs = [("ifname", nic.tap)] + script
        virtio = nic.model.startswith("virtio")
        if offers.vhost_net and virtio:
            pairs.append(("vhost", "on"))
        if guest.queues and virtio:
            pairs.append(("queues", guest.queues))
    elif net.mode == "direct":  # QEMU cannot open a macvtap by name: it is handed /dev/tapN open
        kind, pairs = "tap", [("fd", direct_fd(index))]
    elif net.mode == "user":
        kind, pairs = "user", _user(net)
    else:
        kind, pairs = "socket", _socket(topo, net, guest)
    if syntax == "legacy":
        model = _LEGACY_MODELS.get(nic.model, nic.model)
        return ["-net", _opts("nic", [("model", model), ("macaddr", nic.mac)]), "-net", _opts(kind, pairs)]
    device = [("netdev", ident), ("mac", nic.mac)]
    if guest.queues and net.bridged and nic.model.startswith("virtio"):
        device += [("mq", "on"), ("vectors", 2 * guest.queues + 2)]
    return ["-netdev", _opts(kind, [("id", ident)] + pairs), "-device", _opts(nic.model, device)]


def guest_args(topo: Topology, guest: Guest, syntax: str = "netdev", hooks: bool = False,
               offers: HostOffers = HostOffers()) -> list[list[str]]:
    """One argv fragment per NIC."""
    if syntax == "legacy" and len(guest.nics) > 1:
        raise InputError(f"guests.{guest.name}: the legacy -net syntax joins every NIC to one hub "
                         f"(QEMU has no vlan= any more); this guest has {len(guest.nics)} NICs: use --syntax netdev")
    return [nic_args(topo, guest, i, nic, syntax, hooks, offers) for i, nic in enumerate(guest.nics)]


def machine_args(guest: Guest, accel: str) -> list[str]:
    """Everything but the network: accelerator, size, boot media, the user's extra arguments."""
    args = ["-accel", accel, "-m", str(guest.memory), "-smp", str(guest.cpus)]
    if accel == "kvm":
        args += ["-cpu", "host"]
    if guest.kernel:
        args += ["-kernel", guest.kernel]
    if guest.initrd:
        args += ["-initrd", guest.initrd]
    if guest.append:
        args += ["-append", guest.append]
    if guest.disk:
        args += ["-drive", f"file={guest.disk.replace(',', ',,')},if=virtio"]
    return args + list(guest.qemu_args)
