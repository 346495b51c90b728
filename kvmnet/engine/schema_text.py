"""Checks of the text a state record carries to nft and to dnsmasq (engine/stepschema.py's):
each returns a reason, or None when the text is one kvmnet itself could have written."""

from __future__ import annotations

import re

from .. import naming


def nft_text(v, w):
    """nft text may only name kvmnet's own tables for this topology at its top level (what
    `nft -f` runs: render/nft.py's text, or a listing of those tables taken for a rollback)."""
    table = naming.nft_table(w.topology)
    own = re.compile(rf"(table|delete table|add table|flush table) (inet|bridge) {re.escape(table)}( \{{\}}?)?")
    depth = 0  # nft reads its commands by braces, not by indentation (" flush ruleset" is top level)
    for line in v.splitlines():
        bare = _QUOTED.sub('""', line)
        top = bare.strip()
        if depth == 0 and top and top != "}" and (";" in bare or not own.fullmatch(top)):
            return f"nft text touches more than table {table}: {line[:60]!r}"
        depth += bare.count("{") - bare.count("}")
        if depth < 0:
            return f"nft text closes a brace it never opened: {line[:60]!r}"
    return None


_QUOTED = re.compile(r'"[^"]*"')  # (a comment's text: its braces are not nft's)


# the options render/dnsmasq.py writes, and no other: a record's conf may not add a dhcp-script
# (run as root), another conf-file or conf-dir, a server to forward to
_DNSMASQ_OPTIONS = frozenset({
    "pid-file", "user", "group", "strict-order", "except-interface", "interface", "bind-dynamic", "domain-needed",
    "bogus-priv", "no-hosts", "addn-hosts", "no-resolv", "domain", "local", "expand-hosts", "enable-ra",
    "dhcp-range", "ra-param", "dhcp-hostsfile", "dhcp-leasefile", "dhcp-lease-max", "dhcp-no-override",
    "dhcp-authoritative", "dhcp-rapid-commit", "no-ping", "dhcp-option", "enable-tftp", "tftp-root", "dhcp-boot"})


def dnsmasq_conf(v, w):
    if not isinstance(v, str):
        return "must be a string"
    for line in v.splitlines():
        if not line or line.startswith("#"):
            continue
        option = line.partition("=")[0]
        if option not in _DNSMASQ_OPTIONS:
            return f"dnsmasq option {option[:40]!r} is not one kvmnet writes"
    return None
