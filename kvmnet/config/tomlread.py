"""Typed reading of a parsed TOML document that records problems (with file, line and key
path) instead of raising, so the loader reports every problem of a file in one run."""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Network, IPv6Address, ip_address

from .. import naming
from ..errors import Problem
from .tomlpos import format_path, key_lines, line_of

MISSING = object()
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # one search per string: a file has ~50,000 of them
_LEASE = re.compile(r"\d+[smhdw]?|infinite", re.ASCII)  # dnsmasq's lease times
# a dotted quad as ipaddress accepts it: four decimal octets <= 255, no leading zeros
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_QUAD = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")


def dotted_quad(text) -> int | None:
    """The IPv4 address `text` spells as ipaddress reads it, as an integer; None for anything
    else (the loaders' fast paths then leave it to the full path and its messages)."""
    if type(text) is not str or not _QUAD.fullmatch(text):
        return None
    a, b, c, d = (int(x) for x in text.split("."))
    return a << 24 | b << 16 | c << 8 | d


class Reader:
    """Typed access to the raw TOML dict that records problems instead of raising."""

    def __init__(self, file: str, text: str):
        self.file, self.text = file, text
        self._lines: dict | None = None
        self.problems: list[Problem] = []
        self._flawed: set[tuple] = set()  # every key path with a problem at or under it

    @property
    def lines(self) -> dict:
        """Key path -> line, computed only once there is a problem to place (a valid file with
        thousands of forwards should not pay for a scan it never uses)."""
        if self._lines is None:
            self._lines = key_lines(self.text)
        return self._lines

    def error(self, path: tuple, reason: str) -> None:
        self.problems.append(Problem(self.file, line_of(self.lines, path), format_path(path), reason))
        self._flawed.update(tuple(path[:i]) for i in range(1, len(path) + 1))

    def flawed(self, path: tuple) -> bool:
        """Whether a problem was reported at or under `path`: checks that would only repeat
        it in other words ("unknown network" for a network whose mode was wrong) stay quiet."""
        return tuple(path) in self._flawed

    def sorted_problems(self) -> list[Problem]:
        """In line order (a stable sort: problems without a line first, then as found)."""
        return sorted(self.problems, key=lambda p: p.line or 0)

    def table(self, value, path: tuple, allowed: tuple[str, ...]) -> dict:
        if not isinstance(value, dict):
            self.error(path, f"must be a table, not {type_name(value)}")
            return {}
        for key in value:
            if key not in allowed:
                self.error(path + (key,), f"unknown key (allowed: {', '.join(allowed)})")
        return value

    def get(self, table: dict, key: str, path: tuple, kind, default=MISSING):
        """Return table[key] checked against kind (a type, or a tuple of types); None when
        missing and optional, or when wrong (the problem is recorded)."""
        if key not in table:
            if default is MISSING:
                self.error(path + (key,), "is required")
                return None
            return default
        value = table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            wanted = " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)
            self.error(path + (key,), f"must be {wanted}, not {type_name(value)}")
            return None
        if isinstance(value, str) and _CONTROL.search(value):
            self.error(path + (key,), "must not contain control characters (newlines, NUL, ...)")
            return None
        return value

    def ipv4(self, table: dict, key: str, path: tuple, default=MISSING) -> IPv4Address | None:
        return self._address(table, key, path, default, IPv4Address, "IPv6; only IPv4 is supported here")

    def ipv6(self, table: dict, key: str, path: tuple, default=None) -> IPv6Address | None:
        return self._address(table, key, path, default, IPv6Address, "IPv4; this key takes an IPv6 address")

    def _address(self, table: dict, key: str, path: tuple, default, family, other: str):
        """An address of `family` (IPv4Address or IPv6Address); the other family is refused."""
        text = self.get(table, key, path, str, default)
        if text is None or isinstance(text, family):
            return text
        try:
            addr = ip_address(text)
        except ValueError:
            self.error(path + (key,), f"{text!r} is not an {family.__name__[:4]} address")
            return None
        if not isinstance(addr, family):
            self.error(path + (key,), f"{text} is {other}")
            return None
        return addr

    def lease_time(self, table: dict, path: tuple) -> str | None:
        """dnsmasq's lease time: seconds, or a number with s/m/h/d/w, or `infinite`."""
        lease = self.get(table, "lease_time", path, str, "1h")
        if lease is not None and not _LEASE.fullmatch(lease):
            self.error(path + ("lease_time",), f"{lease!r} is not a lease time (like 3600, 1h, 2d, infinite)")
        return lease

    def ifname(self, table: dict, key: str, path: tuple, default=MISSING) -> str | None:
        name = self.get(table, key, path, str, default)
        if name is not None:
            why = naming.ifname_problem(name)
            if why:
                self.error(path + (key,), why)
                return None
        return name

    def array(self, value, path: tuple) -> list:
        """An array of tables (forwards, hostfwd, ...); [] with a problem if it is not one."""
        if not isinstance(value, list):
            self.error(path, f"must be an array of tables, not {type_name(value)}")
            return []
        return value

    def proto(self, table: dict, path: tuple) -> str | None:
        proto = self.get(table, "proto", path, str, "tcp")
        if proto not in (None, "tcp", "udp"):
            self.error(path + ("proto",), f"{proto!r} must be tcp or udp")
            return None
        return proto

    def port(self, value, path: tuple) -> tuple[int, int] | None:
        """A port or an inclusive range: 80, or "8000-8010"."""
        if isinstance(value, int) and not isinstance(value, bool):
            lo = hi = value
        elif isinstance(value, str) and re.fullmatch(r"\d{1,5}-\d{1,5}", value.strip(), re.ASCII):
            lo, hi = (int(p) for p in value.strip().split("-"))
        else:
            self.error(path, f"must be a port (1-65535) or a range \"LOW-HIGH\", not {value!r}")
            return None
        if not (1 <= lo <= 65535 and 1 <= hi <= 65535):
            self.error(path, f"{value} is outside 1-65535")
            return None
        if lo > hi:
            self.error(path, f"range {value} is reversed")
            return None
        return lo, hi


_KIND_NAMES = {str: "a string", int: "an integer", bool: "true or false", dict: "a table",
               list: "an array"}


def type_name(value) -> str:
    for kind, name in ((bool, "true or false"), (str, "a string"), (int, "an integer"),
                       (float, "a float"), (dict, "a table"), (list, "an array")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def check_host_address(r: Reader, path: tuple, addr: IPv4Address, subnet: IPv4Network) -> bool:
    if addr not in subnet:
        r.error(path, f"{addr} is outside subnet {subnet}")
        return False
    if addr in (subnet.network_address, subnet.broadcast_address):
        which = "network" if addr == subnet.network_address else "broadcast"
        r.error(path, f"{addr} is the {which} address of {subnet}")
        return False
    return True


def check_range(r: Reader, path: tuple, start, end, net, host_check=check_host_address) -> bool:
    """A DHCP range: both ends host addresses of `net` (as `host_check` judges), not reversed."""
    ok = host_check(r, path + ("start",), start, net)
    ok = host_check(r, path + ("end",), end, net) and ok
    if ok and start > end:
        r.error(path + ("end",), f"range {start}-{end} is reversed")
        return False
    return ok
