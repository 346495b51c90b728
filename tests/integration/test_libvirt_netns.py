"""Imported libvirt networks behave like the libvirt network: applied in throwaway namespaces,
a DHCP client gets its static lease by MAC (libvirt's <host mac ip>), another one a lease from the
range, and the gateway answers DNS for <host name>, <dns><host> and the domain."""

from pathlib import Path

import pytest

from helpers.dirs import readable_dir
from helpers.natlab import NatLab
from kvmnet.config import libvirt_xml

pytestmark = pytest.mark.root
CORPUS = Path(__file__).resolve().parents[1] / "data" / "libvirt"

CASES = {
    # stem: (bridge, {client MAC: static address}, range prefix, {name: address}, router (none: isolated))
    "full-nat": ("virbr7", {"52:54:00:7a:00:10": "192.168.77.10", "52:54:00:7a:00:11": "192.168.77.11"},
                 "192.168.77.1", {"web.lab.test": "192.168.77.10", "web": "192.168.77.10", "files": "192.168.77.50",
                                  "files-alias.lab.test": "192.168.77.50", "printer": "192.168.77.60",
                                  "host-192-168-77-11": "192.168.77.11"}, "192.168.77.1"),
    "isolated": ("virbr6", {"52:54:00:66:00:10": "192.168.66.10"}, "192.168.66.",
                 {"web": "192.168.66.10"}, ""),
}


@pytest.fixture
def imported(tmp_path):
    """The imported topology, its tftp_root pointed at a directory dnsmasq's user can read."""
    with readable_dir("kn-tftp-") as tftp:
        def make(stem: str) -> Path:
            text = (CORPUS / f"{stem}.xml").read_text().replace("/srv/tftp", str(tftp))
            out = tmp_path / f"{stem}.toml"
            out.write_text(libvirt_xml.import_text(text, f"{stem}.xml"))
            return out
        yield make


@pytest.mark.parametrize("stem", sorted(CASES))
def test_imported_network_serves_static_leases_and_dns(stem, imported):
    bridge, statics, range_prefix, names, router = CASES[stem]
    lab = NatLab(imported(stem))
    try:
        lab.apply()
        for i, (mac, ip) in enumerate(statics.items()):
            lease = lab.add_client(f"s{i}", mac, bridge=bridge, serve=False).lease
            assert (lease["ip"], lease["router"]) == (ip, router), lease
        dynamic = lab.add_client("dyn", "52:54:00:00:00:77", bridge=bridge, serve=False)
        assert dynamic.lease["ip"].startswith(range_prefix) and dynamic.lease["ip"] not in statics.values()
        gateway = {"full-nat": "192.168.77.1", "isolated": "192.168.66.1"}[stem]
        for name, ip in names.items():
            out = dynamic.ns.run("busybox", "nslookup", name, gateway, check=False).stdout
            assert ip in out, (name, out)
    finally:
        lab.close()
