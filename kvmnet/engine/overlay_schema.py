"""The closed schema of the overlay's recorded steps (see stepschema.py, which includes these):
a VXLAN device is one of kvmnet's own names (kvxN), flooding entries name it and a peer address,
and kvmnet's FRR instance lives in the topology's own state dir and is described by parameters
only (host name, addresses): a record never carries FRR configuration text."""

from __future__ import annotations

import ipaddress
import os
import re

from .. import naming
from ..ifname import problem as ifname_problem

R, O = True, False  # required, optional


def _vxlan_name(v, w):
    ok = isinstance(v, str) and re.fullmatch(r"kvx[0-9]{1,8}", v)
    return None if ok else f"{v!r} is not one of kvmnet's VXLAN devices"


def _ip(v, w):
    try:
        ipaddress.ip_address(v)
    except (ValueError, TypeError):
        return f"{v!r} is not an IP address"
    return None


def _ips(v, w):
    if not isinstance(v, list):
        return "must be a list of IP addresses"
    return next((why for x in v if (why := _ip(x, w))), None)


def _int_in(lo: int, hi: int):
    def check(v, w):
        ok = isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi
        return None if ok else f"{v!r} is not an integer in {lo}..{hi}"
    return check


def _bool(v, w):
    return None if isinstance(v, bool) else f"must be bool, not {type(v).__name__}"


def _opt_bool(v, w):
    return None if v is None else _bool(v, w)


def _ifname(v, w):
    return f"must be str, not {type(v).__name__}" if not isinstance(v, str) else ifname_problem(v)


def _host_name(v, w):
    return None if isinstance(v, str) and naming.OBJECT_NAME_RE.fullmatch(v) else f"{v!r} is not a host name"


def _frr_dir(v, w):
    """kvmnet's FRR instance lives in the topology's own state dir, nowhere else."""
    want = os.path.join(w.topo_dir, "frr")
    return None if v == want else f"{v!r} is not {want} (outside the topology's state dir)"


_FDB = {"dev": (R, _vxlan_name), "dst": (R, _ip)}

OPS = {
    "vxlan.add": {"name": (R, _vxlan_name), "vni": (R, _int_in(1, 16777215)), "local": (R, _ip),
                  "port": (R, _int_in(1, 65535)), "master": (R, _ifname), "mtu": (R, _int_in(68, 65535)),
                  "learning": (O, _bool), "port_learning": (O, _opt_bool), "replace": (O, _bool)},
    "fdb.add": _FDB,
    "fdb.del": _FDB,
    "frr.start": {"dir": (R, _frr_dir), "host": (R, _host_name), "listen": (R, _ip), "peers": (R, _ips),
                  "restart": (O, _bool)},
    "frr.stop": {"dir": (R, _frr_dir), "purge": (O, _bool)},
}
