"""QEMU network arguments for a guest's NICs. Pure: the caller says what the host offers.

One NIC renders to a short list of argv words (never a shell string): a backend (`-netdev
tap|user|socket,...`) and a front end (`-device MODEL,netdev=ID,mac=MAC`), or the seed's legacy
pair `-net nic,model=...,macaddr=... -net tap,...`.
"""

from __future__ import annotations


from ..errors import InputError
from ..valueclass import value
from ..model import Guest, Network, Nic, Topology
from . import qemu_tuning as tuning
from . import passt

# `-net nic,model=` takes the short names
_LEGACY_MODELS = {"virtio-net-pci": "virtio", "virtio-net": "virtio"}


@value
class HostOffers:
    vhost_net: bool = False  # /dev/vhost-net exists
    ifup: str = "kvmnet-ifup"  # paths QEMU runs with --hooks
    ifdown: str = "kvmnet-ifdown"
    bridge_helper: str | None = None  # attach through qemu-bridge-helper (-netdev bridge) instead of a tap
    state_dir: str | None = None  # the topology's state dir: where its vde_switches' sockets are
    state_root: str = "/run/kvmnet"  # where passt networks' sockets are (render/passt.py)


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
    helper = net.bridged and offers.bridge_helper
    if helper:
        kind, pairs = "bridge", tuning.helper_pairs(net, offers.bridge_helper, f"guests.{guest.name}.nics[{index}]")
    elif net.bridged:
        kind = "tap"
        script = [("script", offers.ifup), ("downscript", offers.ifdown)] if hooks else [("script", "no"), ("downscript", "no")]
        pairs = [("ifname", nic.tap)] + script + tuning.tap_pairs(guest, nic, offers.vhost_net)
    elif net.mode == "direct":  # QEMU cannot open a macvtap by name: it is handed /dev/tapN open
        kind, pairs = "tap", [("fd", direct_fd(index))]
    elif net.mode == "user":
        kind, pairs = "user", _user(net)
    elif net.mode == "vde":
        kind, pairs = "vde", tuning.vde_pairs(net, offers.state_dir)
    elif net.mode == "passt":  # QEMU 7.2 connects to the NIC's own passt as a stream client
        sock = next(p.socket for p in passt.nics(topo, guest.name, offers.state_root) if p.index == index)
        kind, pairs = "stream", [("server", "off"), ("addr.type", "unix"), ("addr.path", sock)]
    else:
        kind, pairs = "socket", _socket(topo, net, guest)
    capture = tuning.capture_args(nic, index, ident, syntax, f"guests.{guest.name}.nics[{index}]")
    if syntax == "legacy":
        model = _LEGACY_MODELS.get(nic.model, nic.model)
        vectors = [("vectors", nic.tuning.vectors)] if nic.tuning.vectors is not None else []
        return ["-net", _opts("nic", [("model", model), ("macaddr", nic.mac)] + vectors), "-net", _opts(kind, pairs)]
    device = [("netdev", ident), ("mac", nic.mac)] + tuning.device_pairs(guest, nic, net.bridged and not helper)
    return ["-netdev", _opts(kind, [("id", ident)] + pairs), "-device", _opts(nic.model, device)] + capture


def guest_args(topo: Topology, guest: Guest, syntax: str = "netdev", hooks: bool = False,
               offers: HostOffers = HostOffers()) -> list[list[str]]:
    """One argv fragment per NIC."""
    if syntax == "legacy" and len(guest.nics) > 1:
        raise InputError(f"guests.{guest.name}: the legacy -net syntax joins every NIC to one hub "
                         f"(QEMU has no vlan= any more); this guest has {len(guest.nics)} NICs: use --syntax netdev")
    if syntax == "legacy" and any(topo.network(n.network).mode == "passt" for n in guest.nics):
        raise InputError(f"guests.{guest.name}: a passt network needs -netdev stream; use --syntax netdev")
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
