"""Run one Step on the host."""

from __future__ import annotations

from . import netlink, sysctl


def run(step) -> None:
    a = step.args
    match step.op:
        case "bridge.add":
            netlink.add_bridge(a["name"], a.get("mac"), a.get("mtu"), a["stp"], a["forward_delay"], a.get("group"))
        case "tap.add":
            netlink.add_tap(a["name"], a["master"], a.get("mac"), a.get("mtu"), a.get("group"), bool(a.get("multi_queue")))
        case "link.del":
            netlink.delete_link(a["name"])
        case "links.del_group":
            _delete_group(a)
        case "link.set":
            netlink.set_link(a["name"], **{k: v for k, v in a.items() if k != "name"})
        case "addr.add":
            netlink.add_addr(**a)
        case "addr.del":
            netlink.del_addr(**a)
        case "route.add":
            netlink.add_route(a["route"])
        case "route.del":
            netlink.del_route(a["route"])
        case "sysctl.set":
            sysctl.write(a["path"], a["value"])
        case "firewall.apply" | "firewall.delete" | "firewall.elements":
            from . import firewall
            firewall.run(step)
        case "fwaccept.add" | "fwaccept.del":
            from . import coexist
            coexist.run(step)
        case "vde.start" | "vde.stop":
            from . import vde
            vde.run(step)
        case "passt.stop":
            from . import passt
            passt.stop_recorded(a["dir"])
        case "qemuacl.add" | "qemuacl.del":
            from . import qemu_acl
            qemu_acl.run(step)
        case "dnsmasq.start" | "dnsmasq.stop" | "dnsmasq.reload":
            from . import dnsmasq
            dnsmasq.run(step)
        case "firewalld.zone.add" | "firewalld.zone.del" | "firewalld.bind" | "firewalld.unbind":
            from . import firewalld
            firewalld.run(step)
        case "macvtap.add":
            from . import macvtap
            macvtap.run(step)
        case "tc.limit" | "tc.unlimit":
            from . import tc
            tc.run(step)
        case "frr.start" | "frr.stop":
            from . import frr
            frr.run(step)
        case "vxlan.add" | "fdb.add" | "fdb.del":
            from . import vxlan
            vxlan.add(a) if step.op == "vxlan.add" else vxlan.fdb(a, step.op == "fdb.add")
        case _:
            raise ValueError(f"unknown step {step.op}")


def _delete_group(a: dict) -> None:
    """The links in one request when the group holds just them (moved into it first when asked),
    else one by one."""
    if a.get("regroup"):
        netlink.regroup(a["names"], a["group"])
    for name in netlink.delete_group(a["group"], a["names"]):
        netlink.delete_link(name)
