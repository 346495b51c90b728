"""A real guest on a stretched network: three host namespaces on a static VXLAN overlay, the
guest "web" boots on h3 (QEMU, on the tap kvmnet made there) and gets its static lease from h1's
dnsmasq over the overlay; it reaches the wan through h1's NAT, the wan reaches its page through
h1's port forward, and a client on h2 reaches it directly."""

import json
from pathlib import Path

from labkit.guest import Guest

from helpers.multihost import MultiHost

THREE = Path(__file__).resolve().parents[1] / "data" / "multihost" / "three.toml"
FETCH = Path(__file__).resolve().parents[1] / "helpers" / "fetch.py"


def test_a_real_guest_on_h3_is_served_by_h1_over_the_overlay(tmp_path):
    topo = tmp_path / "multihost.toml"
    topo.write_text(THREE.read_text())
    lab = MultiHost(topo)
    guest = None
    try:
        for name in ("h1", "h2", "h3"):
            res = lab.kvmnet(name, "apply", str(topo))
            assert res.returncode == 0, res.stdout + res.stderr
        res = lab.kvmnet("h3", "qemu-args", "--json", str(topo), "web")
        args = [word for nic in json.loads(res.stdout)["nics"] for word in nic["args"]]
        guest = Guest("web", args, netns=lab.hosts["h3"].name).start()
        guest.wait_ready()
        lease = guest.leases()["eth0"]
        assert (lease["ip"], lease["router"]) == ("10.95.0.10/24", "10.95.0.1")
        rc, out = guest.run(f"timeout 5 wget -qO- http://{lab.WAN_PEER}/")
        assert (rc, out.strip()) == (0, f"wan saw {lab.WAN_HOST}")
        page = lab.wan.run("python3", str(FETCH), f"http://{lab.WAN_HOST}:8080/", "5", check=False).stdout
        assert "kvmnet guest web" in page
        db = lab.add_client("h2", "db", "52:54:00:00:00:22", "kvb-lab", serve=False)
        assert "kvmnet guest web" in db.fetch("http://10.95.0.10/")
        rc, out = guest.run("ping -c1 -W2 -s 1400 10.95.0.1")
        assert rc == 0, out
    finally:
        if guest is not None:
            guest.stop(poweroff=False)
        lab.close()
