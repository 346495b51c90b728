"""Can this host use the iptables backend? Cheap checks (no `import iptc`), run when the
backend is chosen: python-iptables and libip4tc present, the kernel's legacy tables loadable, and
no iptables-nft or ip6tables-nft rules in this namespace that kvmnet's legacy chains would
silently run beside (IPv6 follows IPv4: legacy ip6tables through python-iptables, refused
beside ip6tables-nft rules for the same reason)."""

from __future__ import annotations

import gzip
import importlib.util
import os
import platform
import shutil
import subprocess

from ..render.iptables import TABLES

_CONFIG = {"filter": "CONFIG_IP_NF_FILTER", "nat": "CONFIG_IP_NF_NAT", "raw": "CONFIG_IP_NF_RAW"}
USE_NFT = "use `--firewall nftables` (or firewall = \"nftables\" in the topology)"


def unusable_reason(ipv6: bool) -> str | None:
    """Why the iptables backend must not be used here, or None. Cheap: no `import iptc`.
    ip6tables-nft rules matter only to a topology with IPv6: without it kvmnet writes no ip6
    chains to run blind beside them."""
    problem = _nft_conflict(("iptables", "ip6tables") if ipv6 else ("iptables",))
    if problem:
        return problem
    if importlib.util.find_spec("iptc") is None:
        return f"the iptables backend needs python-iptables (pip install python-iptables), which is not installed; {USE_NFT}"
    import ctypes.util
    if ctypes.util.find_library("ip4tc") is None and ctypes.util.find_library("iptc") is None:
        return ("the iptables backend needs libip4tc (legacy iptables' library, from the iptables package), "
                f"which python-iptables cannot find; {USE_NFT}")
    if present_tables() is None:
        return ("this kernel has no legacy iptables (the ip_tables module is missing or "
                f"CONFIG_IP_NF_IPTABLES_LEGACY is off), and python-iptables writes only legacy tables; {USE_NFT}")
    missing = [t for t in TABLES if not _table_loadable(t)]
    if missing:
        mods = ", ".join(f"iptable_{t}" for t in missing)
        return (f"legacy iptables cannot load the {', '.join(missing)} table(s) here (kernel module(s) {mods} "
                f"missing), which kvmnet's chains need; {USE_NFT}")
    return None


def _nft_conflict(tools: tuple[str, ...]) -> str | None:
    for tool in tools:
        exe = shutil.which(tool)
        if not exe:
            continue
        version = subprocess.run([exe, "-V"], capture_output=True, text=True).stdout
        if "nf_tables" not in version:
            continue
        save = shutil.which(f"{tool}-nft-save") or shutil.which(f"{tool}-save")
        if not save:
            continue
        found = nft_rules(subprocess.run([save], capture_output=True, text=True).stdout)
        if found:
            return _conflict(tool, version.strip(), found)
    return None


def _conflict(tool: str, version: str, found: list[str]) -> str:
    return (f"the iptables backend cannot be used here: this host's `{tool}` is {tool}-nft ({version}) "
            f"and this network namespace already has {tool}-nft rules ({len(found)}, e.g. `{found[0]}`). "
            "kvmnet's iptables backend writes legacy xtables (python-iptables has no nf_tables support): its chains "
            f"would not appear in `{tool} -S` or `{tool}-save` (only in `{tool}-legacy-save`) and would run "
            f"as a second rule set beside {tool}-nft's, each tool blind to the other's rules. "
            f"The nftables backend coexists with {tool}-nft: {USE_NFT}")


def nft_rules(text: str) -> list[str]:
    """Rules, user chains and non-ACCEPT policies in `iptables-nft-save` output."""
    found = []
    for line in text.splitlines():
        if line.startswith("-A "):
            found.append(line)
        elif line.startswith(":"):
            words = line[1:].split()
            if len(words) >= 2 and words[1] not in ("ACCEPT", "-"):
                found.append(f"-P {words[0]} {words[1]}")
            elif len(words) >= 2 and words[1] == "-":
                found.append(f"-N {words[0]}")
    return found


def present_tables(family: int = 4) -> list[str] | None:
    """Legacy tables (ip6 tables for family 6) this namespace has; None when the kernel has no
    legacy iptables (ip6tables) at all. Only IPv4 loads the module to find out, as iptables
    does: looking for kvmnet's ip6 chains on an IPv4-only host must not load ip6_tables (writing
    them does, through the kernel's own autoload)."""
    names, module = ("ip_tables_names", "ip_tables") if family == 4 else ("ip6_tables_names", "ip6_tables")
    for attempt in (1, 2):
        try:
            with open(f"/proc/net/{names}") as f:
                return f.read().split()
        except FileNotFoundError:
            if attempt == 1 and family == 4 and os.path.exists("/proc/modules") and shutil.which("modprobe"):
                subprocess.run(["modprobe", "-q", module], capture_output=True)  # as iptables does
                continue
            return None
    return None


def _table_loadable(table: str) -> bool:
    """True unless the kernel demonstrably lacks the table (then iptc_init would fail)."""
    if table in (present_tables() or []) or os.path.exists(f"/sys/module/iptable_{table}"):
        return True
    if os.path.exists("/proc/modules"):
        base = f"/lib/modules/{platform.release()}"
        for name in ("modules.builtin", "modules.dep"):
            try:
                with open(os.path.join(base, name)) as f:
                    if f"/iptable_{table}.ko" in f.read():
                        return True
            except OSError:
                return True  # cannot tell: let apply try
        return False
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            return f"{_CONFIG[table]}=y" in f.read()
    except OSError:
        return True
