"""The closed schema of a state record and of every step it may hold.

A record's undo steps run as root, so a record is checked whole when it is loaded, before any of
it runs: each step's op is one steps.py defines, each argument is one that op takes, of its type,
and every name or path is one kvmnet itself derives for this topology (a file path in the
topology's own state dir, a sysctl under /proc/sys/net, kvmnet's own firewall table or chains).
A record carries no executable path and no command to run: the firewall steps' `command` is the
text `kvmnet plan` prints, and nothing executes it.

`check_record` raises SchemaError (a ValueError) naming the first thing wrong.
"""

from __future__ import annotations

import ipaddress
import os
import re

from .. import naming
from ..valueclass import fields, value
from ..ifname import problem as ifname_problem
from ..observed import Route
from ..render.host_forward import host_forward_accepts
from .overlay_schema import OPS as OVERLAY_OPS
from .schema_text import dnsmasq_conf as _dnsmasq_conf, nft_text as _nft_text


class SchemaError(ValueError):
    pass


@value
class Where:
    """What a record's values must agree with: its topology and that topology's state dir."""

    topology: str
    topo_dir: str


# --- value checks: each returns a reason, or None when the value is fine ---------------------

def _type(*types):
    names = "/".join("null" if t is type(None) else t.__name__ for t in types)
    # bool is an int in Python; an int argument must not accept true/false
    return lambda v, w: None if isinstance(v, types) and not (isinstance(v, bool) and bool not in types) \
        else f"must be {names}, not {type(v).__name__}"


_str, _int, _bool = _type(str), _type(int), _type(bool)
_opt_str, _opt_int, _opt_bool = _type(str, type(None)), _type(int, type(None)), _type(bool, type(None))


def _abs_dir(v, w):
    if not isinstance(v, str) or not v.startswith("/") or "\n" in v or "\0" in v:
        return "must be an absolute directory path"
    return None


def _ifname(v, w):
    return _str(v, w) or ifname_problem(v)


def _master(v, w):  # "" means "no master"
    return _str(v, w) or (ifname_problem(v) if v else None)


def _mac(v, w):
    return _opt_str(v, w) or (None if v is None or re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", v)
                              else f"{v!r} is not a MAC address")


def _parses(parse, what: str):
    """A string that `parse` (ipaddress.ip_interface, ip_address) accepts."""
    def check(v, w):
        if _str(v, w):
            return _str(v, w)
        try:
            parse(v)
        except ValueError:
            return f"{v!r} is not {what}"
        return None
    return check


_cidr = _parses(ipaddress.ip_interface, "an address/prefix")
_ip = _parses(ipaddress.ip_address, "an IP address")


_ROUTE_FIELDS = {f.name for f in fields(Route)}


def _label(v, w):
    return _str(v, w) or (None if len(v.encode()) <= 15 and v.isprintable() else f"{v!r} is not an address label")


def _bounded(lo: int, hi: int):
    def check(v, w):
        return _int(v, w) or (None if lo <= v <= hi else f"{v} is not in {lo}..{hi}")
    return check


def _addr_flags(v, w):
    # only flags `ip addr add` can set (noprefixroute, home, nodad, mngtmpaddr, ...): 0x716
    return _int(v, w) or (None if v & ~0x716 == 0 else f"{v:#x} holds flags kvmnet never sets")


def _seconds(v, w):
    return None if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 else "must be seconds"


# an address with what `ip addr add` can give it; addr.del carries them so that its undo re-adds
# the address exactly (bridge mode moves the uplink's addresses and puts them back)
_ADDR = {"link": (True, _ifname), "cidr": (True, _cidr), "label": (False, _label), "broadcast": (False, _ip),
         "peer": (False, _ip), "scope": (False, _bounded(0, 255)), "flags": (False, _addr_flags),
         "metric": (False, _bounded(0, 2**32 - 1)), "valid_lft": (False, _bounded(0, 2**32 - 1)),
         "preferred_lft": (False, _bounded(0, 2**32 - 1)), "read_at": (False, _seconds)}


def _route(v, w):
    if not isinstance(v, dict):
        return "must be a route object"
    extra = set(v) - _ROUTE_FIELDS
    if extra:
        return f"unknown route field(s) {', '.join(sorted(extra))}"
    if v.get("family") not in (4, 6) or not isinstance(v.get("dst"), str):
        return "a route needs family 4 or 6 and a dst"
    bad = [k for k, x in v.items() if not isinstance(x, (str, int, type(None)))]
    return _ifname(v.get("dev"), w) or (f"route field {bad[0]} must be a string or number" if bad else None)


def _sysctl_path(v, w):
    # sysctl.set writes /proc/sys/<path>: anything but a plain path under net/ could write elsewhere
    if _str(v, w) or not re.fullmatch(r"net(/[A-Za-z0-9_\-][A-Za-z0-9_.\-]*)+", v) or "/../" in f"/{v}/":
        return f"{v!r} is not a sysctl under /proc/sys/net"
    return None


def _own_file(paths, what: str, ext: str):
    """A file of this network's `what`, in this topology's state dir and nowhere else: `paths` is
    naming.dnsmasq_paths or naming.vde_paths."""
    def check(v, w, args):
        want = paths(w.topo_dir, args.get("network", ""))[ext]
        return _str(v, w) or (None if v == want else f"{v!r} is not {want} (outside the topology's state dir)")
    check.needs_args = True
    check.__doc__ = f"a file of this network's {what}"
    return check


def _state_file(ext: str):
    return _own_file(naming.dnsmasq_paths, "dnsmasq", ext)


def _vde_file(ext: str):
    return _own_file(naming.vde_paths, "vde_switch", ext)


_SYSTEM_BIN = ("/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin")


def _dnsmasq_exe(v, w):
    # transitional: older records name the binary; it is resolved at run time from now on, and
    # a recorded one is accepted only if it is dnsmasq in a system bin directory
    if _str(v, w) or os.path.dirname(v) not in _SYSTEM_BIN or os.path.basename(v) != "dnsmasq":
        return f"{v!r} is not dnsmasq in a system bin directory"
    return None


def _group(v, w):
    """A group name as getent prints it (dnsmasq's group, which reads the reloadable files)."""
    ok = isinstance(v, str) and 0 < len(v) <= 32 and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*\$?", v)
    return None if ok else f"{v!r} is not a group name"


def _backend(v, w):
    return None if v in ("nftables", "iptables") else f"{v!r} is not a firewall backend"


def _specs(v, w, args):
    """Only the accepts kvmnet writes for this bridge, with this topology's comment: a record's
    rules go into the host's own FORWARD chain."""
    if not isinstance(v, list) or not isinstance(bridge := args.get("bridge"), str):
        return "must be a list of kvmnet's accept rules"
    allowed = list(host_forward_accepts(bridge, w.topology).values())
    bad = next((s for s in v if s not in allowed), None)
    return None if bad is None else f"{str(bad)[:80]} is not one of kvmnet's accepts for {bridge}"


_specs.needs_args = True


def _this_topology(v, w):
    return None if v == w.topology else f"{v!r} is not this record's topology ({w.topology!r})"


def _names(v, w):
    if not isinstance(v, list):
        return "must be a list of interface names"
    return next((ifname_problem(x) or None for x in v if not isinstance(x, str) or ifname_problem(x)), None) \
        if all(isinstance(x, str) for x in v) else "must be a list of interface names"


def _own_table(v, w, args):
    own = naming.iptables_prefix(w.topology) if args.get("backend") == "iptables" else naming.nft_table(w.topology)
    return None if v == own else f"{v!r} is not this topology's firewall ({own})"


_own_table.needs_args = True


def _ruleset(v, w):
    if isinstance(v, str):
        return _nft_text(v, w)
    return None if isinstance(v, (dict, type(None))) else "must be nft text or an iptables ruleset"


# one map element as render/nft.py writes it: [address . ]proto . port : address . port; only
# these characters reach `nft -f`, so a record's element can name nothing else
_ELEMENT = re.compile(r"(?:[0-9a-f.:]{2,45} \. )?(?:tcp|udp) \. [0-9]{1,5} : [0-9a-f.:]{2,45} \. [0-9]{1,5}")
_ELEMENTS = re.compile(rf"(?:{_ELEMENT.pattern}\n)++")
_MAP_NAMES = ("fwd_any", "fwd_addr", "fwd6_any", "fwd6_addr")  # render/nft.py MAP_NAMES


def elements(v, w=None):
    """{map: [element, ...]} of kvmnet's own DNAT maps (a reason, or None)."""
    if not isinstance(v, dict):
        return "must map kvmnet's map names to lists of elements"
    for name, elems in v.items():
        if name not in _MAP_NAMES:
            return f"{name!r} is not one of kvmnet's maps"
        if not isinstance(elems, list) or not all(isinstance(e, str) for e in elems):
            return f"{name}: must be a list of elements"
        # one regex pass over all of them (a record holds 10,000 forwards; loaded on every run),
        # possessive: no element holds a newline, so no backtracking into the ones before (~1 ms)
        if elems and not _ELEMENTS.fullmatch("\n".join(elems) + "\n"):
            bad = next(e for e in elems if not _ELEMENT.fullmatch(e))
            return f"{name}: {bad[:60]!r} is not a map element"
    return None


def _nft_only(v, w):
    return None if v == "nftables" else "element deltas are nftables only"


def _kvmnet_zone(v, w):
    # only kvmnet's own zones: an undo never deletes, or unbinds from, anyone else's
    return None if v in ("kvmnet", "kvmnet-tftp") else f"{v!r} is not a firewalld zone of kvmnet's"


def _services(v, w):
    ok = isinstance(v, list) and all(isinstance(s, str) and re.fullmatch(r"[a-z0-9][a-z0-9-]{0,31}", s) for s in v)
    return None if ok else "must be a list of firewalld service names"


def _any(v, w):
    return None


def _direction(v, w, args):
    if v not in ("in", "out"):
        return f"{v!r} is not in or out"
    return "an outbound limit needs its ifb" if v == "out" and "ifb" not in args else None


_direction.needs_args = True


def _own_ifb(v, w, args):
    """An ifb named as kvmnet derives it for this link, so an undo deletes no one else's link."""
    from ..render.tc import ifb_name
    want = ifb_name(w.topology, args.get("dev", ""))
    return None if v == want and args.get("direction") == "out" else f"{v!r} is not this topology's ifb for {args.get('dev')!r}"


_own_ifb.needs_args = True
_TC = {"dev": (True, _ifname), "direction": (True, _direction), "ifb": (False, _own_ifb)}


def _macv_kind(v, w):
    return None if v in ("macvtap", "macvlan") else f"{v!r} is not macvtap or macvlan"


def _macv_mode(v, w):
    return None if v in ("bridge", "vepa", "private", "passthrough") else f"{v!r} is not a macvtap mode"


def _own_passt_dir(v, w, args):
    """The directory of this guest NIC's passt, as naming.passt_dir derives it: an undo stops
    only the passt serving a socket there, and removes nothing anywhere else."""
    guest, nic = args.get("guest"), args.get("nic")
    if not isinstance(guest, str) or not isinstance(nic, int):
        return "needs the guest and its NIC index"
    want = os.path.join(w.topo_dir, f"passt-{naming.tap_name(w.topology, guest, nic)}")
    return _str(v, w) or (None if v == want else f"{v!r} is not {want} (this guest NIC's passt directory)")


_own_passt_dir.needs_args = True


# --- ops: argument -> (required, check) -------------------------------------------------------

R, O = True, False  # required, optional
_LINK_SET = {"name": (R, _ifname), "master": (O, _master), "mac": (O, _mac), "mtu": (O, _opt_int),
             "up": (O, _opt_bool), "stp": (O, _opt_bool), "forward_delay": (O, _opt_int)}
_FIREWALL = {"backend": (R, _backend), "table": (R, _own_table), "summary": (R, _str),
             "command": (O, _str),  # display only (Step.command); never executed
             "delete": (O, _ruleset), "ruleset": (O, _ruleset), "previous": (O, _ruleset), "listing": (O, _str)}
def _object_name(v, w):
    # a network's name goes into its files' paths (dnsmasq-NAME.conf, dnsmasq-NAME.d/): as config
    # takes it, never a '/' or '..' that would lead out of the topology's state dir
    return _str(v, w) or (None if naming.OBJECT_NAME_RE.fullmatch(v) else f"{v!r} is not a network name")


_DNSMASQ = {"network": (R, _object_name), "conf": (R, _state_file("conf")), "pid_file": (R, _state_file("pid")),
            "leases": (R, _state_file("leases")), "exe": (O, _dnsmasq_exe)}

_VDE = {"network": (R, _object_name), "ctl": (R, _vde_file("ctl")), "pid_file": (R, _vde_file("pid")),
        "mgmt": (R, _vde_file("mgmt"))}
_QEMU_ACL = {"conf_dir": (R, _abs_dir), "bridge": (R, _ifname), "topology": (R, _str)}

_FWACCEPT = {"bridge": (R, _ifname), "topology": (R, _this_topology), "specs": (R, _specs),
             "family": (O, lambda v, w: None if v in (4, 6) and not isinstance(v, bool) else f"{v!r} is not 4 or 6")}


def _own_group(v, w):
    """One of this topology's link groups (its taps', its bridges', its removals'): deleting by
    group takes every link in it, so never group 0, nor another topology's."""
    own = (naming.link_group(w.topology), naming.bridge_group(w.topology), naming.removal_group(w.topology))
    return _int(v, w) or (None if v in own else f"{v} is not one of this topology's link groups")


def _link_kinds(v, w):
    return None if v in ("taps", "bridges") else f"{v!r} is not taps or bridges"


OPS = {
    "bridge.add": {"name": (R, _ifname), "mac": (O, _mac), "mtu": (O, _opt_int), "stp": (R, _bool),
                   "forward_delay": (R, _int), "group": (O, _opt_int)},
    "tap.add": {"name": (R, _ifname), "master": (R, _master), "mac": (O, _mac), "mtu": (O, _opt_int),
                "group": (O, _opt_int), "multi_queue": (O, _opt_bool)},
    "link.del": {"name": (R, _ifname)},
    "vde.start": {**_VDE, "tap": (O, _ifname), "bridge": (O, _ifname)},
    "vde.stop": _VDE,
    "qemuacl.add": _QEMU_ACL,
    "qemuacl.del": _QEMU_ACL,
    "links.del_group": {"group": (R, _own_group), "names": (R, _names), "what": (O, _link_kinds), "regroup": (O, _bool)},
    "link.set": _LINK_SET,
    "addr.add": _ADDR,
    "addr.del": _ADDR,
    "route.add": {"route": (R, _route)},
    "route.del": {"route": (R, _route)},
    "sysctl.set": {"path": (R, _sysctl_path), "value": (R, _str)},
    "firewall.apply": _FIREWALL,
    "firewall.delete": _FIREWALL,
    "firewall.elements": {"backend": (R, _nft_only), "table": (R, _own_table), "summary": (R, _str),
                          "command": (O, _str),  # display only, as _FIREWALL's
                          "delete": (R, elements), "add": (R, elements)},
    "fwaccept.add": _FWACCEPT,
    "fwaccept.del": _FWACCEPT,
    # hosts, dhcp_hosts: the text of the files dnsmasq re-reads on SIGHUP (records before 0.2 had none)
    "dnsmasq.start": {**_DNSMASQ, "bridge": (R, _ifname), "conf_text": (R, _dnsmasq_conf), "previous": (O, _opt_str),
                      "hosts": (O, _str), "dhcp_hosts": (O, _str), "group": (O, _group),
                      "previous_hosts": (O, _opt_str), "previous_dhcp_hosts": (O, _opt_str)},
    "dnsmasq.reload": {"network": (R, _object_name), "bridge": (R, _ifname), "conf": (R, _state_file("conf")),
                       "pid_file": (R, _state_file("pid")), "hosts": (R, _str), "dhcp_hosts": (R, _str),
                       "group": (O, _group)},
    "dnsmasq.stop": {**_DNSMASQ, "purge": (O, _bool)},
    "firewalld.zone.add": {"zone": (R, _kvmnet_zone), "services": (R, _services)},
    "firewalld.zone.del": {"zone": (R, _kvmnet_zone)},
    "firewalld.bind": {"bridge": (R, _ifname), "zone": (R, _kvmnet_zone)},
    "firewalld.unbind": {"bridge": (R, _ifname), "zone": (R, _kvmnet_zone)},
    "tc.limit": {**_TC, "rate": (R, _bounded(1, 2**64 - 1)), "burst": (R, _bounded(1, 2**32 - 1))},
    "tc.unlimit": _TC,
    "macvtap.add": {"name": (R, _ifname), "kind": (R, _macv_kind), "uplink": (R, _ifname), "mode": (R, _macv_mode),
                    "mac": (O, _mac)},
    "passt.stop": {"guest": (R, _str), "nic": (R, _bounded(0, 4095)), "dir": (R, _own_passt_dir)},
    **OVERLAY_OPS,  # VXLAN devices, flooding entries, kvmnet's FRR (overlay_schema.py)
}


def check_step(data, where: Where) -> None:
    """Raise SchemaError unless `data` is {"op": OP, "args": {...}} as OPS defines it."""
    if not isinstance(data, dict) or set(data) != {"op", "args"}:
        raise SchemaError("a step must be an object with exactly `op` and `args`")
    op, args = data["op"], data["args"]
    spec = OPS.get(op) if isinstance(op, str) else None
    if spec is None:
        raise SchemaError(f"unknown step op {op!r}")
    if not isinstance(args, dict):
        raise SchemaError(f"{op}: args must be an object")
    extra = sorted(set(args) - set(spec))
    if extra:
        raise SchemaError(f"{op}: unknown argument(s) {', '.join(map(str, extra))}")
    for name, (required, check) in spec.items():
        if name not in args:
            if required:
                raise SchemaError(f"{op}: missing argument {name}")
            continue
        why = check(args[name], where, args) if getattr(check, "needs_args", False) else check(args[name], where)
        if why:
            raise SchemaError(f"{op}: {name}: {why}")
