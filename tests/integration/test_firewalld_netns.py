"""kvmnet with a real firewalld (Debian's package) running in the lab's host namespace, its own
system D-Bus and a temporary /etc/firewalld, default zone `drop`: guests get leases and reach
the outside because kvmnet binds its bridge to its own zone; a `firewall-cmd --reload` drops the
binding (and the guests' traffic), and with `kvmnet watch` running it is back within a second;
destroy removes the binding and the zone, and no other zone changed."""

from __future__ import annotations

import time

import pytest
from helpers import firewalld as fwd
from helpers.dirs import readable_dir
from helpers.natlab import Client, NatLab, dhcp_lease
from helpers.watching import Watch

pytestmark = pytest.mark.root
WAN = "http://10.0.0.1/"


@pytest.fixture
def lab(topo_dir, tmp_path):
    why = fwd.missing()
    if why:
        pytest.skip(why)
    lab = NatLab(topo_dir / "nat.toml")
    fw = None
    try:
        fw = fwd.Firewalld(lab.host, tmp_path, default_zone="drop")
        lab.fw = fw
        yield lab
    finally:
        lab.host.kvmnet("destroy", str(lab.topology), env={"DBUS_SYSTEM_BUS_ADDRESS": fw.env["DBUS_SYSTEM_BUS_ADDRESS"]}
                        if fw else None)
        if fw:
            fw.close()
        for ns in reversed(lab.spaces):
            ns.delete()


def reaches_wan(client, within: float) -> float | None:
    """Seconds until the client fetches the wan's page (None if not within `within`)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < within:
        if client.fetch(WAN, 0.3) == "wan saw 10.0.0.2\n":
            return time.monotonic() - t0
    return None


def test_guests_work_under_a_drop_default_zone_and_after_a_reload(lab, tmp_path):
    fw, bus = lab.fw, {"DBUS_SYSTEM_BUS_ADDRESS": lab.fw.env["DBUS_SYSTEM_BUS_ADDRESS"]}
    zones_before = fw.cmd("--permanent", "--get-zones").stdout.split()
    policies_before = fw.cmd("--permanent", "--get-policies").stdout.split()
    assert fw.cmd("--get-default-zone").stdout.strip() == "drop"
    res = lab.host.kvmnet("apply", str(lab.topology), env=bus)
    assert res.returncode == 0, res.stderr
    assert "create firewalld zone kvmnet (dhcp, dhcpv6, dns; forwarding accepted)" in res.stdout
    assert fw.cmd("--get-zone-of-interface=virbr0").stdout.strip() == "kvmnet"
    assert "kvmnet-in" in fw.cmd("--get-policies").stdout.split()
    web = lab.add_client("web", "52:54:00:12:34:56", serve=False)
    assert web.lease["ip"] == "192.168.122.10" and web.lease["dns"] == "192.168.122.1"
    assert reaches_wan(web, 3) is not None

    # control: a reload without watch drops the binding, and firewalld's drop zone the traffic
    fw.cmd("--reload")
    assert fw.cmd("--get-zone-of-interface=virbr0", check=False).stdout.strip() in ("", "no zone")
    assert reaches_wan(web, 1.5) is None
    check = lab.host.kvmnet("check", str(lab.topology), env=bus)
    assert check.returncode == 1 and "firewalld:bind:virbr0" in check.stdout

    watch = Watch(lab.host, tmp_path / "watch.log", env=bus)
    try:
        watch.wait_for(r"nat: repaired in \d+ ms \(drifted: firewalld:bind:virbr0\)", timeout=3)
        assert reaches_wan(web, 2) is not None
        for i in range(3):  # reload under watch: working again within a second, every time
            fw.cmd("--reload")
            t_reloaded = time.monotonic()
            watch.wait_for(r"drifted: firewalld:bind:virbr0", timeout=2, count=2 + i)
            took = reaches_wan(web, 2)
            assert took is not None and time.monotonic() - t_reloaded < 1.0, watch.log()
        assert fw.cmd("--get-zone-of-interface=virbr0").stdout.strip() == "kvmnet"
    finally:
        watch.close()

    res = lab.host.kvmnet("destroy", str(lab.topology), env=bus)
    assert res.returncode == 0, res.stderr
    assert "unbind virbr0 from firewalld zone kvmnet" in res.stdout and "delete firewalld zone kvmnet" in res.stdout
    assert fw.cmd("--permanent", "--get-zones").stdout.split() == zones_before
    assert fw.cmd("--permanent", "--get-policies").stdout.split() == policies_before  # kvmnet-in gone too
    assert fw.cmd("--get-zone-of-interface=virbr0", check=False).stdout.strip() in ("", "no zone")
    assert "virbr0" not in fw.cmd("--list-all-zones").stdout


def test_a_zone_kvmnet_creates_reloads_firewalld_and_every_binding_stays(lab, tmp_path):
    """Creating kvmnet-tftp (a second topology's network serves TFTP) needs a reload, which with
    firewalld's default FlushAllOnReload=yes unbinds every runtime-bound interface: the first
    topology's bridge (its guests' DHCP and DNS to the host then meet the drop zone) and an
    admin's. Each is bound again at once, with no `kvmnet watch` running."""
    fw, bus = lab.fw, {"DBUS_SYSTEM_BUS_ADDRESS": lab.fw.env["DBUS_SYSTEM_BUS_ADDRESS"]}
    assert lab.host.kvmnet("apply", str(lab.topology), env=bus).returncode == 0
    web = lab.add_client("web", "52:54:00:12:34:56", serve=False)
    fw.cmd("--zone=trusted", "--change-interface=admin0")  # the admin's, at runtime only
    pxe = tmp_path / "pxe.toml"
    with readable_dir() as root:
        pxe.write_text(f'[networks.pxe]\nmode = "isolated"\nbridge = "kvmpxe0"\nsubnet = "10.66.0.0/24"\n'
                       f'tftp_root = "{root}"\n[networks.pxe.dhcp]\nstart = "10.66.0.100"\nend = "10.66.0.150"\n')
        try:
            res = lab.host.kvmnet("apply", str(pxe), env=bus)
            assert res.returncode == 0, res.stderr
            assert "create firewalld zone kvmnet-tftp" in res.stdout
            zones = {i: fw.cmd(f"--get-zone-of-interface={i}", check=False).stdout.strip() for i in ("virbr0", "admin0", "kvmpxe0")}
            assert zones == {"virbr0": "kvmnet", "admin0": "trusted", "kvmpxe0": "kvmnet-tftp"}
            assert lab.host.kvmnet("check", str(lab.topology), env=bus).returncode == 0
            assert dhcp_lease(web.ns, "web")["ip"] == "192.168.122.10"  # DHCP to the host, through kvmnet's zone
            assert reaches_wan(web, 3) is not None
        finally:
            destroyed = lab.host.kvmnet("destroy", str(pxe), env=bus)
    assert destroyed.returncode == 0, destroyed.stderr
    assert fw.cmd("--get-zone-of-interface=admin0").stdout.strip() == "trusted"


def test_without_firewalld_kvmnet_plans_nothing_for_it(netns, topo_dir):
    """A system bus with nobody owning firewalld's name: no zone, no binding, as before."""
    res = netns.kvmnet("plan", "--json", str(topo_dir / "nat.toml"),
                       env={"DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent/bus"})
    assert res.returncode == 0 and "firewalld" not in res.stdout


def test_a_routed_network_is_reachable_from_the_lan_under_firewalld(lab, topo_dir):
    """As libvirt's libvirt-routed-in policy: firewalld's zones filter what enters a routed bridge
    from the LAN too, so kvmnet's zones let it through to kvmnet's own table (which decides, as
    without firewalld: a routed subnet in, a NAT one only replies and forwarded ports)."""
    bus = {"DBUS_SYSTEM_BUS_ADDRESS": lab.fw.env["DBUS_SYSTEM_BUS_ADDRESS"]}
    routed = topo_dir / "routed.toml"
    try:
        assert lab.host.kvmnet("apply", str(lab.topology), env=bus).returncode == 0
        res = lab.host.kvmnet("apply", str(routed), env=bus)
        assert res.returncode == 0, res.stderr
        db = lab.add_client("db", "52:54:00:80:00:05", bridge="kvmrt0")
        web = lab.add_client("web", "52:54:00:12:34:56")
        lab.wan.sh(f"ip route replace 10.80.0.0/24 via {lab.WAN_HOST} && ip route replace 192.168.122.0/24 via {lab.WAN_HOST}")
        wan = Client(lab.wan, "wan", {})
        assert wan.fetch(f"http://{db.lease['ip']}/", 2).startswith("db saw 10.0.0.1"), "routed network not reached"
        assert "ERROR" in wan.fetch(f"http://{web.lease['ip']}/", 1)  # the NAT network still refuses
        assert db.fetch(WAN, 2) == f"wan saw {db.lease['ip']}\n"  # and out, with its own address
    finally:
        lab.host.kvmnet("destroy", str(routed), env=bus)
