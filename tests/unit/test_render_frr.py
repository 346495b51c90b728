"""kvmnet's FRR configuration: iBGP full mesh over the underlay, EVPN only, advertise-all-vni;
every path under the topology's state dir."""

from kvmnet.render import frr


def test_bgpd_peers_with_every_other_host_in_the_evpn_family_only():
    assert frr.bgpd_conf("h2", "10.200.0.2", ["10.200.0.1", "10.200.0.3"]) == """\
! kvmnet's bgpd (generated; do not edit)
frr defaults datacenter
hostname kvmnet-h2
router bgp 65000
 bgp router-id 10.200.0.2
 no bgp default ipv4-unicast
 neighbor 10.200.0.1 remote-as 65000
 neighbor 10.200.0.1 update-source 10.200.0.2
 neighbor 10.200.0.3 remote-as 65000
 neighbor 10.200.0.3 update-source 10.200.0.2
 address-family l2vpn evpn
  neighbor 10.200.0.1 activate
  neighbor 10.200.0.3 activate
  advertise-all-vni
 exit-address-family
"""


def test_every_file_and_socket_is_in_the_topologys_state_dir():
    paths = frr.paths("/run/kvmnet/lab")
    assert paths == {"dir": "/run/kvmnet/lab/frr", "zserv": "/run/kvmnet/lab/frr/zserv.api",
                     "zebra_conf": "/run/kvmnet/lab/frr/zebra.conf", "bgpd_conf": "/run/kvmnet/lab/frr/bgpd.conf",
                     "zebra_pid": "/run/kvmnet/lab/frr/zebra.pid", "bgpd_pid": "/run/kvmnet/lab/frr/bgpd.pid"}
