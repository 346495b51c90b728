"""User-mode networks' IPv6 keys (ipv6-net, ipv6-host, ipv6-dns next to ipv6): QEMU's rules,
its defaults, and the -netdev they render to; QEMU itself accepts what kvmnet renders."""

import shutil
import subprocess

import pytest

from kvmnet import config
from kvmnet.errors import InputError
from kvmnet.render.qemu import guest_args

HEAD = '[networks.s]\nmode = "user"\n'
TAIL = '[guests.g]\n[[guests.g.nics]]\nnetwork = "s"\nmac = "52:54:00:00:00:01"\n'
V4 = "user,id=net0,net=10.0.2.0/24,host=10.0.2.2,dns=10.0.2.3,dhcpstart=10.0.2.15"


def netdev(keys: str) -> str:
    topo = config.load_text(HEAD + keys + TAIL, "u.toml")
    return guest_args(topo, topo.guest("g"))[0][1]


def problems(keys: str) -> list[str]:
    with pytest.raises(InputError) as exc:
        config.load_text(HEAD + keys + TAIL, "u.toml")
    return [str(p) for p in exc.value.problems]


def test_prefix_host_and_dns_render_with_qemus_defaults():
    assert netdev('"ipv6-net" = "fd00:5::/64"\n') == V4 + ",ipv6-net=fd00:5::/64,ipv6-host=fd00:5::2,ipv6-dns=fd00:5::3"
    assert netdev('ipv6 = true\n"ipv6-net" = "fd00:5::/48"\n"ipv6-host" = "fd00:5::fe"\n"ipv6-dns" = "fd00:5:0:1::53"\n') == \
        V4 + ",ipv4=on,ipv6=on,ipv6-net=fd00:5::/48,ipv6-host=fd00:5::fe,ipv6-dns=fd00:5:0:1::53"
    assert netdev('"ipv6-host" = "fec0::9"\n') == V4 + ",ipv6-net=fec0::/64,ipv6-host=fec0::9,ipv6-dns=fec0::3"
    assert netdev("") == V4  # nothing given: QEMU's own defaults, unnamed


@pytest.mark.parametrize("keys, expected", [
    ('ipv6 = false\n"ipv6-net" = "fd00:5::/64"\n',
     "u.toml:4: networks.s.ipv6-net: IPv6 is off (ipv6 = false): remove this key or turn IPv6 on"),
    ('"ipv6-net" = "fd00:5::/127"\n', "u.toml:3: networks.s.ipv6-net: 'fd00:5::/127' must be an IPv6 prefix of at most /126 (addr/len)"),
    ('"ipv6-net" = "10.0.3.0/24"\n', "u.toml:3: networks.s.ipv6-net: '10.0.3.0/24' must be an IPv6 prefix of at most /126 (addr/len)"),
    ('"ipv6-net" = "fd00:5::/64"\n"ipv6-host" = "fd00:6::2"\n', "u.toml:4: networks.s.ipv6-host: fd00:6::2 is outside ipv6-net fd00:5::/64"),
    ('"ipv6-dns" = "10.0.2.3"\n', "u.toml:3: networks.s.ipv6-dns: '10.0.2.3' is not an IPv6 address"),
    ('"ipv6-host" = "fec0::2"\n"ipv6-dns" = "fec0::2"\n', "u.toml:4: networks.s.ipv6-dns: fec0::2 must differ from ipv6-host fec0::2"),
])
def test_rejected_with_message(keys, expected):
    assert expected in problems(keys), problems(keys)


@pytest.mark.skipif(not shutil.which("qemu-system-x86_64"), reason="qemu-system-x86_64 not installed")
@pytest.mark.parametrize("keys", ['"ipv6-net" = "fd00:5::/64"\n', "ipv6 = true\n", "ipv6 = false\n", 'ipv6 = true\n"ipv6-net" = "fd00:5::/48"\n"ipv6-host" = "fd00:5::fe"\n'])
def test_qemu_accepts_the_rendered_netdev(keys):
    res = subprocess.run(["qemu-system-x86_64", "-M", "none", "-nodefaults", "-display", "none", "-S",
                          "-monitor", "stdio", "-netdev", netdev(keys)],
                         input="quit\n", capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
