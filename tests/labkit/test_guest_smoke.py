"""Smoke tests for the test guest itself: it boots under TCG, takes DHCP
leases, answers ping/HTTP and runs commands.  Everything runs inside a
throwaway network namespace; QEMU user-mode networking needs no host setup."""
import pytest

from .guest import Guest, GuestError, http_get, mac, nic_args, skip_reason

_skip = skip_reason()
pytestmark = [pytest.mark.root, pytest.mark.slow,
              pytest.mark.skipif(_skip is not None, reason=_skip or "")]


@pytest.fixture
def ns(netns):
    """The suite's throwaway namespace (tests/conftest.py), by name."""
    return netns.name


def test_user_net_lease_ping_http_and_commands(ns):
    # hostfwd listens on 127.0.0.1 *inside ns*: no port clash with the host.
    net = nic_args("user,hostfwd=tcp:127.0.0.1:18080-:80", 0)
    with Guest("web", net, netns=ns) as g:
        print(f"\nboot-to-lease: {g.boot_seconds:.1f}s")
        lease = g.leases()["eth0"]
        assert lease == {"ip": "10.0.2.15/24", "router": "10.0.2.2", "dns": "10.0.2.3",
                         "via": "dhcp", "client": "udhcpc", "mac": mac(0)}

        # slirp answers ICMP echo for its gateway address.
        rc, out = g.run("ping -c1 -W2 10.0.2.2")
        assert rc == 0 and "1 packets received" in out, out

        page = http_get("http://127.0.0.1:18080/", netns=ns)
        assert "kvmnet guest web" in page and "eth0 10.0.2.15/24" in page
        # busybox wget -T segfaults: bound it with timeout instead.
        assert "kvmnet guest web" in g.check("timeout 5 wget -qO- http://10.0.2.15/")

        # The command channel: status, stderr merged, quoting, no wedging.
        assert g.run("echo \"it's\" $((6*7)); echo oops >&2; exit 3") == (3, "it's 42\noops\n")
        assert g.run("if then") [0] == 2                      # syntax error, channel survives
        assert g.run("sleep 10", timeout=1)[0] != 0           # guest-side timeout
        assert g.check("cat /etc/resolv.conf") == "nameserver 10.0.2.3\n"
        assert "default via 10.0.2.2 dev eth0" in g.check("ip route")
        with pytest.raises(GuestError):
            g.check("false")
    assert g.stopped_by == "poweroff"  # powered off cleanly, not killed
    assert "KVMNET-READY name=web" in g.console   # still readable after cleanup


def test_several_nics_drivers_static_and_nolease(ns):
    # virtio + e1000 on two slirp networks, a static NIC and an rtl8139 on
    # empty hubs (nobody answers DHCP there).  Guest names follow driver load
    # order, so look NICs up by MAC.  NOLEASE costs dhcp_tries seconds.
    net = (nic_args("user", 0)
           + nic_args("user,net=10.0.3.0/24", 1, model="e1000")
           + nic_args("hubport,hubid=7", 2)
           + nic_args("hubport,hubid=8", 3, model="rtl8139"))
    with Guest("multi", net, netns=ns,
               append="kvmnet.dhcp_tries=2 kvmnet.static=eth1:192.0.2.5/24") as g:
        print(f"\nboot-to-lease (4 NICs, one NOLEASE): {g.boot_seconds:.1f}s")
        by_mac = {v["mac"]: dict(v, iface=k) for k, v in g.leases().items()}
        assert by_mac[mac(0)]["ip"] == "10.0.2.15/24"
        assert by_mac[mac(1)]["ip"] == "10.0.3.15/24"
        assert by_mac[mac(2)] == {"ip": "192.0.2.5/24", "router": "", "dns": "",
                                  "via": "static", "mac": mac(2), "iface": "eth1"}
        assert by_mac[mac(3)]["ip"] is None
        g.check("ping -c1 -W2 10.0.3.2")
        # eth0 (lowest ifindex) owns the preferred default route.
        assert g.check("ip route").startswith("default via 10.0.2.2 dev eth0")
