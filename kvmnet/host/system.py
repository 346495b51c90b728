"""The host as the engine sees it: one object whose methods read or change this machine.

Every method only delegates to the module that does the work, so the engine can be handed an
in-memory stand-in instead (tests/helpers/fakehost.py), as knftables.Fake stands in for nft.
"""

from __future__ import annotations

from . import coexist, dnsmasq, executor, firewall, netlink, nftables, procs, sysctl


class System:
    # links, addresses and routes
    def links(self):
        return netlink.read_links()

    def links_named(self, names):
        return netlink.read_links_named(names)

    def addrs(self, links):
        return netlink.read_addrs(links)

    def routes(self, links):
        return netlink.read_routes(links)

    def sysctl(self, path: str) -> str | None:
        return sysctl.read(path)

    # kvmnet's firewall table, and the host's own filter FORWARD chain
    def nft_available(self) -> bool:
        return nftables.nft_available()

    def iptables_problem(self, ipv6: bool) -> str | None:
        from . import iptables_probe  # only when that backend is in question
        return iptables_probe.unusable_reason(ipv6)

    def firewall(self, name: str, backend: str, bridge_table: bool, known: dict | None = None) -> dict:
        return firewall.observe(name, backend, bridge_table=bridge_table, known=known)

    def nft_generation(self) -> str | None:
        """nftables' generation stamp now (host/nftgen.py), or None where it cannot be read."""
        from . import nftgen
        return nftgen.stamp()

    def firewall_listing(self, table: str) -> str:
        return nftables.listing(table)

    def host_forward(self, ipv6: bool = False) -> dict:
        return coexist.observe(ipv6)

    # dnsmasq and sockets
    def vde(self, pid_file: str, ctl: str) -> dict:
        from . import vde
        return vde.observe(pid_file, ctl)

    def qemu_conf_dir(self) -> str:
        from . import qemu_acl
        return qemu_acl.conf_dir()

    def qemu_acl(self, conf_dir: str) -> dict:
        from . import qemu_acl
        return qemu_acl.read(conf_dir)

    def dnsmasq_binary(self) -> str:
        return dnsmasq.binary()

    def dnsmasq_user(self) -> str:
        return dnsmasq.unprivileged_user()

    def dnsmasq_group(self, user: str) -> str:
        return dnsmasq.user_group(user)

    def dnsmasq(self, conf: str, pid_file: str, exe: str | None = None) -> dict:
        """kvmnet's instance for `conf` (found by its binary and --conf-file=, never by name)."""
        return dnsmasq.observe(conf, pid_file)

    def listening(self) -> dict:
        return procs.listening()

    def port_holders(self, port: int, proto: str) -> list[str]:
        return procs.port_holders(port, proto)

    def firewalld(self, bridges: list[str]) -> dict:
        """{} unless firewalld runs; else its zones and each bridge's zone."""
        from . import firewalld
        return firewalld.observe(bridges)

    def ifindex(self, name: str) -> int | None:
        return netlink.index_of(name)

    def qdiscs(self, devs: list[str]) -> dict:
        """The bandwidth limits on these links, as tc reads them back."""
        from . import tc
        return tc.observe(devs)

    # stretched networks: VXLAN devices and their flooding lists
    def overlay(self, vxlans: list[str]) -> dict:
        from . import vxlan
        return vxlan.observe(vxlans)

    def gateway_holder(self, dev: str, ip: str) -> str | None:
        """The MAC of another station answering ARP for `ip` on `dev` (host/arpprobe.py)."""
        from . import arpprobe
        return arpprobe.holder(dev, ip)

    def frr(self, topo_dir: str) -> dict:
        from . import frr
        return frr.observe(topo_dir)

    def frr_sessions(self, topo_dir: str) -> list[dict]:
        from . import frr
        return frr.sessions(topo_dir)

    def remote_macs(self, vxlan: str) -> list[dict]:
        from . import vxlan as vxlans
        return vxlans.remote_macs(vxlan)

    # changes
    def run(self, step) -> None:
        executor.run(step)


_default: System | None = None


def default() -> System:
    """The process-wide host (tests replace this function to hand the engine a fake)."""
    global _default
    if _default is None:
        _default = System()
    return _default
