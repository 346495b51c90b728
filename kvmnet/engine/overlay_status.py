"""What `kvmnet status` shows of a topology's stretched networks on this host: per network its
VXLAN device and the remote MACs it forwards to other hosts (with EVPN: installed by FRR from
BGP, flagged extern_learn), and kvmnet's BGP sessions. Read from the record and the host; changes
nothing."""

from __future__ import annotations

from .. import naming
from ..host import system


def status(rec, state_root: str, host=None) -> dict | None:
    vxlans = [key.split(":", 1)[1] for key, _ in rec.entries if key.startswith("link:kvx")]
    evpn = any(key.startswith("frr:") for key, _ in rec.entries)
    if not vxlans and not evpn:
        return None
    host = host or system.default()
    links = host.links()
    by_bridge = {v["bridge"]: name for name, v in rec.networks.items()}
    networks = {}
    for name in vxlans:
        link = links.get(name)
        net = by_bridge.get(link.master) if link is not None and link.master else None
        networks[net or name] = {"vxlan": name, "vni": int(name[3:]), "present": link is not None,
                                 "remote_macs": host.remote_macs(name) if link is not None else []}
    out = {"networks": networks}
    if evpn:
        out["bgp"] = host.frr_sessions(naming.state_dir_for(rec.topology, state_root))
    return out


def summary(doc: dict) -> str:
    """One line's worth: sessions established and remote MACs known."""
    words = []
    if "bgp" in doc:
        up = sum(1 for s in doc["bgp"] if s["state"] == "Established")
        words.append(f"BGP {up}/{len(doc['bgp'])} established")
    for net, info in doc["networks"].items():
        words.append(f"{net}: VNI {info['vni']}, {len(info['remote_macs'])} remote MAC(s)")
    return "; ".join(words)


def with_overlay(item: dict, rec, state_root: str) -> dict:
    """`status`'s item for a record, with "overlay" when it has stretched networks."""
    found = status(rec, state_root)
    return item if found is None else dict(item, overlay=found)


def words(item: dict) -> str:
    return f"; {summary(item['overlay'])}" if "overlay" in item else ""
