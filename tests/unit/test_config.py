"""Every validation rule, with its exact message (file:line: key.path: reason)."""

import pytest

from helpers.configtext import load, problems
from kvmnet import config
from kvmnet.errors import InputError

NAT = """\
[networks.default]
mode = "nat"
bridge = "virbr0"
subnet = "192.168.122.0/24"
[networks.default.dhcp]
start = "192.168.122.2"
end = "192.168.122.254"
"""


def test_contract_example_loads(topo_dir):
    topo = config.load(str(topo_dir / "nat.toml"))
    net = topo.network("default")
    assert (net.mode, net.bridge, str(net.subnet), str(net.gateway)) == ("nat", "virbr0", "192.168.122.0/24", "192.168.122.1")
    assert (str(net.dhcp.start), str(net.dhcp.end)) == ("192.168.122.2", "192.168.122.254")
    fwd = net.forwards[0]
    assert (fwd.proto, fwd.host_ports, str(fwd.guest_ip), fwd.guest_ports) == ("tcp", (8080, 8080), "192.168.122.10", (80, 80))
    nic = topo.guest("web").nics[0]
    assert (nic.mac, str(nic.ip), nic.model, nic.tap) == ("52:54:00:12:34:56", "192.168.122.10", "virtio-net-pci", "kn-nat-web-0")


def test_every_shipped_topology_validates(topo_dir):
    for path in topo_dir.glob("*.toml"):
        config.load(str(path))


def test_defaults_gateway_and_derived_mac():
    topo = load(NAT + '[guests.a]\n[[guests.a.nics]]\nnetwork = "default"\n')
    assert str(topo.network("default").gateway) == "192.168.122.1"
    mac = topo.guest("a").nics[0].mac
    assert mac.startswith("52:54:00:") and mac == load(NAT + '[guests.a]\n[[guests.a.nics]]\nnetwork = "default"\n').guest("a").nics[0].mac


CASES = [
    # (snippet appended to or replacing the NAT network, the one problem it must report)
    (NAT.replace('end = "192.168.122.254"', 'end = "192.168.123.9"'),
     "t.toml:7: networks.default.dhcp.end: 192.168.123.9 is outside subnet 192.168.122.0/24"),
    (NAT.replace('start = "192.168.122.2"', 'start = "192.168.122.200"').replace('end = "192.168.122.254"', 'end = "192.168.122.100"'),
     "t.toml:7: networks.default.dhcp.end: range 192.168.122.200-192.168.122.100 is reversed"),
    (NAT.replace('end = "192.168.122.254"', 'end = "192.168.122.255"'),
     "t.toml:7: networks.default.dhcp.end: 192.168.122.255 is the broadcast address of 192.168.122.0/24"),
    (NAT + 'gateway = "192.168.122.0"\n',  # a key after [dhcp] belongs to dhcp
     "t.toml:8: networks.default.dhcp.gateway: unknown key (allowed: start, end, lease_time)"),
    (NAT.replace('subnet = "192.168.122.0/24"', 'subnet = "192.168.122.0/24"\ngateway = "192.168.122.0"'),
     "t.toml:5: networks.default.gateway: 192.168.122.0 is the network address of 192.168.122.0/24"),
    (NAT.replace('subnet = "192.168.122.0/24"', 'subnet = "192.168.122.0/24"\ngateway = "10.0.0.1"'),
     "t.toml:5: networks.default.gateway: 10.0.0.1 is outside subnet 192.168.122.0/24"),
    (NAT.replace('mode = "nat"', 'mode = "nat"\ncolour = "blue"'),
     "t.toml:3: networks.default.colour: unknown key (allowed: mode, bridge, stp, forward_delay, mtu, mac, subnet, gateway, dhcp, domain, dns_hosts, tftp_root, bootfile, spoof_protection, forwards, subnet6, gateway6, nat6, dhcp6, allow_unprivileged, bandwidth)"),
    (NAT.replace('mode = "nat"', 'mode = "wormhole"'),
     "t.toml:2: networks.default.mode: unknown mode 'wormhole' (one of nat, routed, isolated, bridge, user, socket, direct, vde, passt)"),
    (NAT.replace('mode = "nat"', 'mode = "nat"\nstp = "yes"'),
     "t.toml:3: networks.default.stp: must be true or false, not a string"),
    (NAT.replace('"virbr0"', '"averyveryverylongbridge"'),
     "t.toml:3: networks.default.bridge: 'averyveryverylongbridge' is 23 bytes; interface names are at most 15 bytes (kvmnet never truncates)"),
    (NAT.replace('"virbr0"', '"vir br0"'),
     "t.toml:3: networks.default.bridge: 'vir br0' is not a valid interface name (letters, digits, '_', '-', '.' only)"),
    (NAT.replace('"virbr0"', '"br/0"'),
     "t.toml:3: networks.default.bridge: 'br/0' is not a valid interface name (letters, digits, '_', '-', '.' only)"),
    (NAT.replace('"192.168.122.0/24"', '"192.168.122.7/24"'),
     "t.toml:4: networks.default.subnet: 192.168.122.7/24 has host bits set; did you mean 192.168.122.0/24?"),
    (NAT.replace('"192.168.122.0/24"', '"0.0.0.0/0"'),
     "t.toml:4: networks.default.subnet: /0 is outside /8-/30 (a guest network needs a gateway and guests, and no more than a /8)"),
    (NAT.replace('"192.168.122.0/24"', '"banana"'),
     "t.toml:4: networks.default.subnet: 'banana' is not a subnet in CIDR form (like 192.168.122.0/24)"),
    (NAT + '[networks.other]\nmode = "isolated"\nbridge = "br1"\nsubnet = "192.168.122.128/25"\n',
     "t.toml:11: networks.other.subnet: 192.168.122.128/25 overlaps networks.default.subnet 192.168.122.0/24"),
    (NAT + '[networks.other]\nmode = "isolated"\nbridge = "virbr0"\n',
     "t.toml:10: networks.other.bridge: virbr0 is already used by networks.default"),
    (NAT + '[guests.a]\n[[guests.a.nics]]\nnetwork = "nowhere"\n',
     "t.toml:10: guests.a.nics[0].network: unknown network 'nowhere'"),
    (NAT + '[guests.a]\n[[guests.a.nics]]\nnetwork = "default"\nmac = "53:54:00:00:00:01"\n',
     "t.toml:11: guests.a.nics[0].mac: 53:54:00:00:00:01 is a multicast MAC; a NIC needs a unicast one"),
    (NAT + '[guests.a]\n[[guests.a.nics]]\nnetwork = "default"\nmac = "52:54:00:zz:00:01"\n',
     "t.toml:11: guests.a.nics[0].mac: '52:54:00:zz:00:01' is not a MAC address (like 52:54:00:12:34:56, 52-54-00-12-34-56 or 5254.0012.3456)"),
    (NAT + '[guests.a]\n[[guests.a.nics]]\nnetwork = "default"\nmac = "52:54:00:00:00:01"\n'
           '[guests.b]\n[[guests.b.nics]]\nnetwork = "default"\nmac = "52:54:00:00:00:01"\n',
     "t.toml:15: guests.b.nics[0].mac: 52:54:00:00:00:01 is also the MAC of guests.a.nics[0]"),
    (NAT + '[guests.a]\n[[guests.a.nics]]\nnetwork = "default"\nip = "10.1.1.1"\n',
     "t.toml:11: guests.a.nics[0].ip: 10.1.1.1 is outside subnet 192.168.122.0/24"),
    (NAT + '[guests.a]\n[[guests.a.nics]]\nnetwork = "default"\nip = "192.168.122.5"\n'
           '[guests.b]\n[[guests.b.nics]]\nnetwork = "default"\nip = "192.168.122.5"\n',
     "t.toml:15: guests.b.nics[0].ip: 192.168.122.5 is also the ip of guests.a.nics[0]"),
    (NAT + '[guests.a]\n[[guests.a.nics]]\nnetwork = "default"\nip = "192.168.122.1"\n',
     "t.toml:11: guests.a.nics[0].ip: 192.168.122.1 is the gateway of networks.default"),
    (NAT + '[[networks.default.forwards]]\nhost_port = 80\nguest = "ghost"\n',
     "t.toml:10: networks.default.forwards[0].guest: unknown guest 'ghost'"),
    (NAT + '[[networks.default.forwards]]\nhost_port = 80\nguest = "192.168.122.9"\n'
           '[[networks.default.forwards]]\nhost_port = 80\nguest = "192.168.122.8"\n',
     "t.toml:12: networks.default.forwards[1].host_port: tcp host port 80 overlaps networks.default.forwards[0]"),
    (NAT + '[[networks.default.forwards]]\nhost_port = 70000\nguest = "192.168.122.9"\n',
     "t.toml:9: networks.default.forwards[0].host_port: 70000 is outside 1-65535"),
    (NAT + '[[networks.default.forwards]]\nhost_port = "8010-8000"\nguest = "192.168.122.9"\n',
     "t.toml:9: networks.default.forwards[0].host_port: range 8010-8000 is reversed"),
    (NAT + '[[networks.default.forwards]]\nhost_port = "8000-8010"\nguest_port = "80-81"\nguest = "192.168.122.9"\n',
     "t.toml:10: networks.default.forwards[0].guest_port: range 80-81 is not the same size as host_port 8000-8010"),
    (NAT + '[[networks.default.forwards]]\nproto = "sctp"\nhost_port = 1\nguest = "192.168.122.9"\n',
     "t.toml:9: networks.default.forwards[0].proto: 'sctp' must be tcp or udp"),
    (NAT + '[guests.a]\n[[guests.a.nics]]\nnetwork = "default"\n[[networks.default.forwards]]\nhost_port = 80\nguest = "a"\n',
     "t.toml:13: networks.default.forwards[0].guest: guest 'a' has no static ip on network 'default'; a port forward needs one (set guests.a.nics[].ip)"),
    ('[networks.lan]\nmode = "bridge"\nbridge = "br0"\n', "t.toml:1: networks.lan.uplink: is required"),
    ('[networks.s]\nmode = "socket"\ntransport = "tcp"\nport = 1234\n'
     + "".join(f'[guests.g{i}]\n[[guests.g{i}.nics]]\nnetwork = "s"\n' for i in range(3)),
     "t.toml:3: networks.s.transport: a tcp link joins exactly two guests, but 3 use it (g0, g1, g2); use transport = \"mcast\""),
    ('[networks.s]\nmode = "socket"\ntransport = "mcast"\naddress = "10.0.0.1"\nport = 1234\n',
     "t.toml:4: networks.s.address: 10.0.0.1 is not a multicast address (224.0.0.0/4)"),
    ('[networks.u]\nmode = "user"\nhost = "10.0.2.3"\n', "t.toml:1: networks.u.dns: 10.0.2.3 must differ from host 10.0.2.3"),
    ('[networks.u]\nmode = "user"\ndhcpstart = "10.0.3.15"\n', "t.toml:3: networks.u.dhcpstart: 10.0.3.15 is outside subnet 10.0.2.0/24"),
    ('[networks.u]\nmode = "user"\n[[networks.u.hostfwd]]\nhost_port = 5022\nguest_port = 22\n'
     '[[networks.u.hostfwd]]\nhost_port = 5022\nguest_port = 23\n',
     "t.toml:7: networks.u.hostfwd[1].host_port: duplicate of hostfwd[0] (tcp port 5022)"),
    ('[networks.u]\nmode = "user"\n[[networks.u.hostfwd]]\nhost_port = 0\nguest_port = 22\n',
     "t.toml:4: networks.u.hostfwd[0].host_port: 0 is outside 1-65535"),
    ('[networks.u]\nmode = "user"\n[[networks.u.hostfwd]]\nhost_port = 22\nguest_port = 22\nguest_addr = "10.9.9.9"\n',
     "t.toml:6: networks.u.hostfwd[0].guest_addr: 10.9.9.9 is outside net 10.0.2.0/24"),
    ('[networks.u]\nmode = "user"\n[[networks.u.guestfwd]]\nserver_addr = "10.0.2.100"\nserver_port = 1234\ntarget = "nowhere"\n',
     "t.toml:6: networks.u.guestfwd[0].target: 'nowhere' must be HOST:PORT or cmd:COMMAND"),
    ('[networks.u]\nmode = "user"\nnet = "10.0.2.0/255.255.0.255"\n', "t.toml:3: networks.u.net: '10.0.2.0/255.255.0.255' is not addr/prefix or addr/netmask"),
    ('[networks.u]\nmode = "user"\nsmb = "relative/dir"\n', "t.toml:3: networks.u.smb: must be an absolute path"),
    ('[networks.u]\nmode = "user"\nhostname = "a,b"\n', "t.toml:3: networks.u.hostname: must be non-empty and contain no commas or newlines (QEMU option syntax)"),
    ('[networks.u]\nmode = "user"\nrestrict = "yes"\n', "t.toml:3: networks.u.restrict: must be true or false, not a string"),
    ('[networks.s]\nmode = "socket"\ntransport = "udp"\nport = 1234\n'
     + "".join(f'[guests.g{i}]\n[[guests.g{i}.nics]]\nnetwork = "s"\n' for i in range(3)),
     "t.toml:3: networks.s.transport: a udp link joins exactly two guests, but 3 use it (g0, g1, g2); use transport = \"mcast\""),
    ('[networks.s]\nmode = "socket"\ntransport = "pigeon"\nport = 1\n', "t.toml:3: networks.s.transport: 'pigeon' must be tcp, udp or mcast"),
    ('[networks.s]\nmode = "socket"\ntransport = "tcp"\nport = 1\n[guests.a]\nmemory = 1\n', "t.toml:6: guests.a.memory: 1 is outside 16-1048576"),
    ('[networks.s]\nmode = "socket"\ntransport = "tcp"\nport = 1\n[guests.a]\n[[guests.a.nics]]\nnetwork = "s"\ntap = "x"\n',
     "t.toml:8: guests.a.nics[0].tap: only NICs on bridged networks have taps (s is socket)"),
    ('[networks."../x"]\nmode = "isolated"\nbridge = "b"\n', 't.toml:1: networks."../x": network name \'../x\' must be 1-32 letters, digits, \'_\' or \'-\''),
    ('name = "a b"\n', 't.toml:1: name: topology name \'a b\' must be 1-24 letters, digits or \'_\' (set name = "..." in the file)'),
]


@pytest.mark.parametrize("text,expected", CASES)
def test_rejected_with_message(text, expected):
    assert problems(text) == [expected]


def test_toml_syntax_error():
    """The reason after the prefix is tomllib's (its wording may change between Pythons)."""
    [found] = problems('[networks.default\nmode = "nat"\n')
    assert found.startswith("t.toml:1: TOML syntax error: ") and "(at line 1, column 18)" in found, found


def test_all_problems_reported_in_one_run():
    text = NAT.replace('end = "192.168.122.254"', 'end = "192.168.123.9"') + \
        '[guests.a]\n[[guests.a.nics]]\nnetwork = "nowhere"\nmac = "ff:ff:ff:ff:ff:ff"\n'
    assert problems(text) == [
        "t.toml:7: networks.default.dhcp.end: 192.168.123.9 is outside subnet 192.168.122.0/24",
        "t.toml:10: guests.a.nics[0].network: unknown network 'nowhere'",  # in line order
        "t.toml:11: guests.a.nics[0].mac: ff:ff:ff:ff:ff:ff is the broadcast MAC; a NIC needs a unicast one",
    ]


def test_user_net_mask_forms():
    topo = load('[networks.u]\nmode = "user"\nnet = "10.1.0.0/255.255.0.0"\n')
    user = topo.network("u").user
    assert str(user.net) == "10.1.0.0/16" and str(user.host) == "10.1.0.2" and str(user.dhcpstart) == "10.1.0.15"


def test_file_errors(tmp_path):
    with pytest.raises(InputError, match="No such file"):
        config.load(str(tmp_path / "missing.toml"))
    bad = tmp_path / "bin.toml"
    bad.write_bytes(b"\xff\xfe")
    with pytest.raises(InputError, match="not UTF-8"):
        config.load(str(bad))


def test_locate_places_later_problems_on_their_line(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text(NAT)
    found = config.locate(str(path), [(("networks", "default", "bridge"), "virbr0 exists and is not kvmnet's")])
    assert [str(p) for p in found] == [f"{path}:3: networks.default.bridge: virbr0 exists and is not kvmnet's"]
    gone = config.locate(str(tmp_path / "gone.toml"), [(("networks",), "x")])
    assert [str(p) for p in gone] == [f"{tmp_path / 'gone.toml'}: networks: x"]


def test_world_writable_file_warns(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text(NAT)
    path.chmod(0o644)
    assert config.file_warnings(str(path)) == []
    path.chmod(0o666)
    assert config.file_warnings(str(path)) == [
        f"{path}: warning: the file is world-writable; anyone on this host can change what kvmnet applies as root"]
    assert config.file_warnings(str(tmp_path / "gone.toml")) == []
