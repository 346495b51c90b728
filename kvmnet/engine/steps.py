"""Steps: one host change each, as data. A plan is a list of them; the state record stores
the undo steps. Each step says what it does in words and as the `ip`/`sysctl`/`nft` command a
person would type for the same change."""

from __future__ import annotations

import shlex

from ..valueclass import field, mutable, value
from ..render import macvtap, tc


@value
class Step:
    """One change to the host: an executor's op and its arguments (plain JSON values)."""

    op: str
    args: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"op": self.op, "args": self.args}

    @classmethod
    def from_json(cls, data: dict) -> "Step":
        return cls(data["op"], dict(data.get("args", {})))

    def describe(self) -> str:
        a = self.args
        text = _DESCRIBE[self.op]
        return text(a) if callable(text) else text.format(**a)

    def command(self) -> str:
        return _COMMANDS[self.op](self.args)


@value
class Action:
    """A planned step with the key of the fact it establishes and the step that undoes it.

    kind: "create" (a new thing kvmnet will own: the undo goes into the state record before
    the step runs), "modify" (repair drift on something kvmnet already owns), "remove" (a
    recorded thing the file no longer wants: its recorded undo runs, and the key is dropped).
    """

    key: str
    kind: str
    do: Step
    undo: Step | None

    def to_json(self) -> dict:
        return {"key": self.key, "kind": self.kind, "do": self.do.to_json(),
                "undo": self.undo.to_json() if self.undo else None,
                "describe": self.do.describe(), "command": self.do.command()}


@mutable
class Result:
    """What an apply or destroy did: its actions, in the order they ran."""

    actions: list[Action] = field(default_factory=list)


def _route_words(r: dict) -> str:
    words = [r["dst"]]
    if r.get("gateway"):
        words += ["via", r["gateway"]]
    words += ["dev", r["dev"]]
    if r.get("metric") is not None:
        words += ["metric", str(r["metric"])]
    if r.get("proto") and r["proto"] not in ("boot", "static"):
        words += ["proto", r["proto"]]
    if r.get("scope"):
        words += ["scope", _SCOPES.get(r["scope"], str(r["scope"]))]
    if r.get("prefsrc"):
        words += ["src", r["prefsrc"]]
    if r.get("table", 254) != 254:
        words += ["table", str(r["table"])]
    return " ".join(words)


_SCOPES = {253: "link", 254: "host", 200: "site"}
# IFA_F_* a user sets, as `ip addr add` spells them
_ADDR_FLAGS = {0x2: "nodad", 0x4: "optimistic", 0x10: "home", 0x100: "mngtmpaddr", 0x200: "noprefixroute",
               0x400: "autojoin"}


def _addr_words(a: dict) -> str:
    """`ip addr add` words for an address's attributes besides CIDR and link (lifetimes as
    recorded: the step subtracts the time since they were read)."""
    words = []
    if a.get("peer"):
        words += ["peer", a["peer"]]
    if a.get("broadcast"):
        words += ["brd", a["broadcast"]]
    if a.get("scope"):
        words += ["scope", _SCOPES.get(a["scope"], str(a["scope"]))]
    if a.get("label"):
        words += ["label", a["label"]]
    if a.get("metric") is not None:
        words += ["metric", str(a["metric"])]
    if a.get("valid_lft") is not None:
        words += ["valid_lft", str(a["valid_lft"]), "preferred_lft", str(a.get("preferred_lft", a["valid_lft"]))]
    words += [name for bit, name in _ADDR_FLAGS.items() if a.get("flags", 0) & bit]
    return "".join(f" {w}" for w in words)


def _link_set_words(a: dict) -> str:
    words = []
    if "master" in a:
        words += ["master", a["master"]] if a["master"] else ["nomaster"]
    if a.get("mac"):
        words += ["address", a["mac"]]
    if a.get("mtu"):
        words += ["mtu", str(a["mtu"])]
    if a.get("stp") is not None:
        words += ["type", "bridge", "stp_state", str(int(a["stp"]))]
    if a.get("forward_delay") is not None:
        if "type" not in words:
            words += ["type", "bridge"]
        words += ["forward_delay", str(a["forward_delay"] * 100)]
    if a.get("up") is not None:
        words += ["up" if a["up"] else "down"]
    return " ".join(words)


def _bridge_add(a: dict) -> str:
    opts = f" address {a['mac']}" if a.get("mac") else ""
    mtu = ""
    if a.get("mtu"):  # set after creation, so the kernel keeps it when ports join (see netlink)
        mtu = f" mtu {a['mtu']}"
        if a["mtu"] == 1500:  # the new bridge's MTU already: the kernel would skip the change
            mtu = f" mtu 1499 && ip link set {a['name']} mtu 1500"
        mtu = f" && ip link set {a['name']}{mtu}"
    return (f"ip link add {a['name']}{opts} type bridge stp_state {int(a['stp'])} "
            f"forward_delay {a['forward_delay'] * 100}{mtu} && ip link set {a['name']}"
            + (f" group {a['group']}" if a.get("group") else "") + " up")


def _tap_add(a: dict) -> str:
    opts = (f" address {a['mac']}" if a.get("mac") else "") + (f" mtu {a['mtu']}" if a.get("mtu") else "")
    group = f" group {a['group']}" if a.get("group") else ""
    mq = " multi_queue" if a.get("multi_queue") else ""
    return (f"ip tuntap add dev {a['name']} mode tap vnet_hdr{mq} && "
            f"ip link set {a['name']}{opts} master {a['master']}{group} up")


def _tool(a: dict) -> str:
    """The host's FORWARD chain a fwaccept step edits: iptables', or ip6tables' (family 6)."""
    return "ip6tables" if a.get("family") == 6 else "iptables"


def _six(a: dict) -> str:
    return "ip6tables " if a.get("family") == 6 else ""


def _qemuacl_add(a: dict) -> str:
    own, main = shlex.quote(f"{a['conf_dir']}/kvmnet.conf"), shlex.quote(f"{a['conf_dir']}/bridge.conf")
    include = shlex.quote(f"include {a['conf_dir']}/kvmnet.conf")
    return (f"printf '# kvmnet topology %s\\nallow %s\\n' {a['topology']} {a['bridge']} >> {own} && "
            f"(grep -qxF {include} {main} || echo {include} >> {main})")


def _sysctl_name(path: str) -> str:
    return path.replace("/", ".")


_DESCRIBE = {
    "bridge.add": lambda a: f"create bridge {a['name']} (stp {'on' if a['stp'] else 'off'}, forward delay {a['forward_delay']} s"
                            + (f", mtu {a['mtu']}" if a.get("mtu") else "") + (f", mac {a['mac']}" if a.get("mac") else "") + ")",
    "tap.add": lambda a: f"create {'multi-queue ' if a.get('multi_queue') else ''}tap {a['name']} on bridge {a['master']}",
    "link.del": "delete link {name}",
    "links.del_group": lambda a: f"delete {len(a['names'])} {a.get('what', 'taps')} (link group {a['group']}"
                                 + (", moved into it first)" if a.get("regroup") else ")"),
    "link.set": lambda a: f"set link {a['name']} " + _link_set_words(a),
    "addr.add": lambda a: f"add address {a['cidr']}{_addr_words(a)} to {a['link']}",
    "addr.del": "remove address {cidr} from {link}",
    "route.add": lambda a: f"add route {_route_words(a['route'])}",
    "route.del": lambda a: f"remove route {_route_words(a['route'])}",
    "sysctl.set": lambda a: f"set sysctl {_sysctl_name(a['path'])} = {a['value']}",
    "firewall.apply": lambda a: f"load firewall rules ({a['backend']}: {a['summary']})",
    "firewall.delete": lambda a: f"remove kvmnet's firewall rules ({a['backend']}: {a['summary']})",
    "firewall.elements": lambda a: f"change port forwards in one transaction ({a['backend']}: {a['summary']})",
    "fwaccept.add": lambda a: f"accept {a['bridge']}'s traffic in the host's {_six(a)}filter FORWARD chain (policy DROP)",
    "fwaccept.del": lambda a: f"remove kvmnet's accepts for {a['bridge']} from the host's {_six(a)}filter FORWARD chain",
    "dnsmasq.start": lambda a: (f"restart dnsmasq for {a['network']} on {a['bridge']}" if a.get("previous")
                                else f"start dnsmasq for {a['network']} on {a['bridge']}"),
    "dnsmasq.stop": lambda a: f"stop dnsmasq for {a['network']}",
    "vde.start": lambda a: f"start vde_switch for {a['network']}" + (
        f", joined to bridge {a['bridge']} through tap {a['tap']}" if a.get("tap") else ""),
    "vde.stop": lambda a: f"stop vde_switch for {a['network']}",
    "passt.stop": lambda a: f"stop passt for guest {a['guest']}'s NIC {a['nic']}",
    "qemuacl.add": lambda a: f"let qemu-bridge-helper attach unprivileged guests to {a['bridge']} "
                             f"({a['conf_dir']}/kvmnet.conf, included from bridge.conf)",
    "qemuacl.del": lambda a: f"stop qemu-bridge-helper attaching unprivileged guests to {a['bridge']}",
    "dnsmasq.reload": lambda a: f"reload dnsmasq for {a['network']} (DNS records and static leases)",
    "firewalld.zone.add": lambda a: f"create firewalld zone {a['zone']} ({', '.join(a['services'])}; forwarding accepted)",
    "firewalld.zone.del": "delete firewalld zone {zone}",
    "firewalld.bind": "bind {bridge} to firewalld zone {zone}",
    "firewalld.unbind": "unbind {bridge} from firewalld zone {zone}",
    "tc.limit": lambda a: (f"limit {a['dev']}'s {_DIRECTION[a['direction']]} to {tc.human_rate(a['rate'])} "
                           f"(burst {a['burst']} bytes" + (f", shaped on {a['ifb']})" if a.get("ifb") else ")")),
    "tc.unlimit": lambda a: f"remove {a['dev']}'s {_DIRECTION[a['direction']]} limit",
    "macvtap.add": lambda a: f"create {a['kind']} {a['name']} on {a['uplink']} (mode {a['mode']}"
                             + (f", mac {a['mac']})" if a.get("mac") else ")"),
    "vxlan.add": lambda a: (f"{'re-create' if a.get('replace') else 'create'} VXLAN {a['name']} (VNI {a['vni']}, "
                            f"local {a['local']}, port {a['port']}, mtu {a['mtu']}) on bridge {a['master']}"),
    "fdb.add": "flood {dev}'s broadcast and unknown frames to peer {dst} too",
    "fdb.del": "stop flooding {dev}'s frames to peer {dst}",
    "frr.start": lambda a: (f"{'restart' if a.get('restart') else 'start'} kvmnet's FRR (zebra, bgpd: EVPN with "
                            f"{', '.join(a['peers']) or 'no peer'})"),
    "frr.stop": "stop kvmnet's FRR (zebra, bgpd)",
    "record.hand_over": lambda a: (f"leave {a['key']} as it is: topology {a['heir']} still needs it, and its record "
                                   f"takes the undo ({Step.from_json(a['undo']).describe()})"),
}

_DIRECTION = {"in": "inbound traffic (its egress)", "out": "outbound traffic (its ingress)"}

_COMMANDS = {
    "record.hand_over": lambda a: f"# nothing on the host: topology {a['heir']}'s record takes the undo",
    "bridge.add": _bridge_add,
    "tap.add": _tap_add,
    "link.del": lambda a: f"ip link del {a['name']}",
    "links.del_group": lambda a: "".join(f"ip link set {n} group {a['group']} && " for n in a["names"] if a.get("regroup"))
                                 + f"ip link del group {a['group']}",
    "link.set": lambda a: f"ip link set {a['name']} " + _link_set_words(a),
    "addr.add": lambda a: f"ip addr add {a['cidr']}{_addr_words(a)} dev {a['link']}",
    "addr.del": lambda a: f"ip addr del {a['cidr']} dev {a['link']}",
    "route.add": lambda a: f"ip {'-6 ' if a['route']['family'] == 6 else ''}route add {_route_words(a['route'])}",
    "route.del": lambda a: f"ip {'-6 ' if a['route']['family'] == 6 else ''}route del {_route_words(a['route'])}",
    "sysctl.set": lambda a: f"sysctl -w {_sysctl_name(a['path'])}={a['value']}",
    "firewall.apply": lambda a: a["command"],
    "firewall.delete": lambda a: a["command"],
    "firewall.elements": lambda a: a["command"],
    "fwaccept.add": lambda a: " && ".join(shlex.join([_tool(a), "-I", "FORWARD", "1", *spec]) for spec in a["specs"]),
    "fwaccept.del": lambda a: " && ".join(shlex.join([_tool(a), "-D", "FORWARD", *spec]) for spec in a["specs"]),
    "dnsmasq.start": lambda a: shlex.join(["dnsmasq", f"--conf-file={a['conf']}"]),
    "dnsmasq.stop": lambda a: f"kill $(cat {shlex.quote(a['pid_file'])})",
    "qemuacl.add": _qemuacl_add,
    "vde.start": lambda a: (f"vde_switch -d -s {shlex.quote(a['ctl'])} -p {shlex.quote(a['pid_file'])} "
                            f"-M {shlex.quote(a['mgmt'])}"
                            + (f" -t {a['tap']} && ip link set {a['tap']} master {a['bridge']} up" if a.get("tap") else "")),
    "vde.stop": lambda a: f"kill $(cat {shlex.quote(a['pid_file'])})",
    "passt.stop": lambda a: f"kill $(cat {shlex.quote(a['dir'] + '/pid')}); rm -r {shlex.quote(a['dir'])}",
    "qemuacl.del": lambda a: (f"sed -i '/^# kvmnet topology {a['topology']}$/{{N;/\\nallow {a['bridge']}$/d}}' "
                              f"{shlex.quote(a['conf_dir'] + '/kvmnet.conf')}"),
    "dnsmasq.reload": lambda a: f"kill -HUP $(cat {shlex.quote(a['pid_file'])})",
    "firewalld.zone.add": lambda a: (f"firewall-cmd --permanent --new-zone={a['zone']} && firewall-cmd --permanent "
                                     f"--zone={a['zone']} --set-target=ACCEPT"
                                     + "".join(f" --add-service={s}" for s in a["services"])
                                     + " --add-protocol=icmp --add-protocol=ipv6-icmp "
                                     "--add-rich-rule='rule priority=\"32767\" reject' && "
                                     f"firewall-cmd --permanent --new-policy={a['zone']}-in && firewall-cmd --permanent "
                                     f"--policy={a['zone']}-in --add-ingress-zone=ANY --add-egress-zone={a['zone']} "
                                     "--set-target=ACCEPT && firewall-cmd --reload"),
    "firewalld.zone.del": lambda a: (f"firewall-cmd --permanent --delete-policy={a['zone']}-in && "
                                     f"firewall-cmd --permanent --delete-zone={a['zone']}"),
    "firewalld.bind": lambda a: f"firewall-cmd --zone={a['zone']} --change-interface={a['bridge']}",
    "firewalld.unbind": lambda a: f"firewall-cmd --zone={a['zone']} --remove-interface={a['bridge']}",
    "tc.limit": lambda a: " && ".join(map(shlex.join, tc.limit(a))),
    "tc.unlimit": lambda a: " && ".join(map(shlex.join, tc.unlimit(a))),
    "macvtap.add": lambda a: " && ".join(map(shlex.join, macvtap.add(a))),
    "vxlan.add": lambda a: ((f"ip link del {a['name']} && " if a.get("replace") else "")
                            + f"ip link add {a['name']} mtu {a['mtu']} type vxlan id {a['vni']} local {a['local']} "
                            f"dstport {a['port']}{'' if a.get('learning') else ' nolearning'} && "
                            f"ip link set {a['name']} master {a['master']} up"
                            + (f" && bridge link set dev {a['name']} learning off" if a.get("port_learning") is False else "")),
    "fdb.add": lambda a: f"bridge fdb append 00:00:00:00:00:00 dev {a['dev']} dst {a['dst']}",
    "fdb.del": lambda a: f"bridge fdb del 00:00:00:00:00:00 dev {a['dev']} dst {a['dst']}",
    "frr.start": lambda a: (f"/usr/lib/frr/zebra -d -u root -g frrvty -f {a['dir']}/zebra.conf ... && "
                            f"/usr/lib/frr/bgpd -d -S -l {a['listen']} -f {a['dir']}/bgpd.conf ..."),
    "frr.stop": lambda a: f"kill $(cat {a['dir']}/bgpd.pid {a['dir']}/zebra.pid)",
}
