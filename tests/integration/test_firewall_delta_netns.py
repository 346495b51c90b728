"""Adding or removing a forward of an applied topology, in a namespace with the real nft: one
`nft -f` of an element delta (add/delete element), no listing of the table to roll back to and no
reload of it (its handle and every rule's handle stay), and the table after it is what a full
load of the same topology gives. A foreign change made after the delta is still found."""

import json
import os
import stat
from pathlib import Path

import pytest

pytestmark = pytest.mark.root
TABLE = "kvmnet_delta"


def _topology(extra: bool) -> str:
    lines = ['name = "delta"', "", "[networks.lan]", 'mode = "nat"', 'bridge = "kvdl0"', 'subnet = "10.61.0.0/24"',
             'gateway = "10.61.0.1"', "", "[networks.lan.dhcp]", 'start = "10.61.0.100"', 'end = "10.61.0.200"', ""]
    guests = ["g0", "g1", "g2"] + (["gx"] if extra else [])
    for k in range(30):
        lines += ["[[networks.lan.forwards]]", f"host_port = {20000 + k}", f'guest = "g{k % 3}"', "guest_port = 80", ""]
    if extra:
        lines += ["[[networks.lan.forwards]]", "host_port = 19999", 'guest = "gx"', "guest_port = 22", ""]
    for i, g in enumerate(guests):
        lines += [f"[guests.{g}]", f"[[guests.{g}.nics]]", 'network = "lan"', f'ip = "10.61.0.{10 + i}"', ""]
    return "\n".join(lines)


@pytest.fixture
def counted(tmp_path):
    """(env whose PATH finds an `nft` that logs each run's arguments and -f input, the log)."""
    shim, log = tmp_path / "bin", tmp_path / "nft.log"
    shim.mkdir()
    real = next(p for d in os.environ["PATH"].split(":") if (p := Path(d) / "nft").exists())
    # NFT_AFTER_LOAD: an nft command the shim runs right after each -f (another commit, someone
    # else's, between kvmnet's load and its verify)
    (shim / "nft").write_text(f'#!/bin/sh\necho "nft $*" >> {log}\n'
                              f'if [ "$1" != -f ]; then exec {real} "$@"; fi\n'
                              f'tee -a {log} | {real} "$@"; rc=$?\n'
                              f'if [ -n "$NFT_AFTER_LOAD" ]; then {real} $NFT_AFTER_LOAD; fi\nexit $rc\n')
    (shim / "nft").chmod(stat.S_IRWXU)
    # the CLI, not libnftables in-process (host/nft_cmd.py): only processes can be shimmed
    return {"PATH": f"{shim}:{os.environ['PATH']}", "KVMNET_NFT_CLI": "1"}, log


def _taken(log: Path) -> str:
    text = log.read_text() if log.exists() else ""
    log.unlink(missing_ok=True)
    return text


def _table(netns) -> tuple[dict, list]:
    """(handles of the table and its rules and chains, the listing without handles, elements sorted)."""
    items = json.loads(netns.run("nft", "-j", "-a", "list", "table", "inet", TABLE).stdout)["nftables"]
    handles, stable = {}, []
    for item in items:
        kind, body = next(iter(item.items()))
        if kind == "metainfo":
            continue
        body = dict(body)
        handle = body.pop("handle", None)
        handles[f"{kind} {body.get('chain', '')} {body.get('name', '')} {json.dumps(body.get('expr'))}"] = handle
        if "elem" in body:
            body["elem"] = sorted(body["elem"], key=json.dumps)
        stable.append({kind: body})
    return handles, stable


def test_a_forward_added_then_removed_is_an_element_delta_equal_to_a_full_load(netns, counted, tmp_path):
    env, log = counted
    topo = tmp_path / "delta.toml"
    topo.write_text(_topology(extra=False))
    assert netns.kvmnet("apply", str(topo), env=env).returncode == 0
    _taken(log)
    handles, _ = _table(netns)
    for extra in (True, False):
        topo.write_text(_topology(extra))
        res = netns.kvmnet("apply", str(topo), env=env)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "change port forwards in one transaction" in res.stdout and "load firewall rules" not in res.stdout
        element = "tcp . 19999 : 10.61.0.13 . 22"
        assert f"nft '{'add' if extra else 'delete'} element inet {TABLE} fwd_any {{ {element} }}'" in res.stdout
        runs = _taken(log)
        # one -f (the delta: nothing else in it), and no listing at all: none to roll back to, and
        # the verify knows the table from nftables' generation (one commit since it was observed)
        assert runs.count("nft -f -") == 1 and "list" not in runs, runs
        assert f"{'add' if extra else 'delete'} element inet {TABLE} fwd_any {{ {element} }}\n" in runs
        assert "table inet" not in runs.replace(f"nft -j list table inet {TABLE}", ""), runs  # no reload
        now, delta_listing = _table(netns)
        assert now == handles  # the same table, chains and rules: only the map's elements changed
        netns.run("nft", "delete", "table", "inet", TABLE)  # a full load of the same topology to compare
        reload = netns.kvmnet("apply", str(topo))
        assert "load firewall rules" in reload.stdout, reload.stdout + reload.stderr
        assert _table(netns)[1] == delta_listing
        handles = _table(netns)[0]
        assert netns.kvmnet("check", str(topo)).returncode == 0
    # after a delta, kvmnet's record of the table is still the truth: a foreign element is drift
    topo.write_text(_topology(extra=True))
    assert netns.kvmnet("apply", str(topo)).returncode == 0
    netns.run("nft", f"add element inet {TABLE} fwd_any {{ tcp . 5555 : 10.61.0.10 . 22 }}")
    check = netns.kvmnet("check", str(topo))
    assert check.returncode != 0 and "firewall" in check.stdout + check.stderr, check.stdout + check.stderr
    fixed = netns.kvmnet("apply", str(topo))
    assert "load firewall rules" in fixed.stdout and "its forwards are not what kvmnet loaded" in fixed.stdout, fixed.stdout
    assert "5555" not in netns.run("nft", "list", "table", "inet", TABLE).stdout
    assert netns.kvmnet("destroy", str(topo)).returncode == 0


def test_a_commit_by_someone_else_during_the_apply_is_verified_by_listing(netns, counted, tmp_path):
    env, log = counted
    topo = tmp_path / "delta.toml"
    topo.write_text(_topology(extra=False))
    assert netns.kvmnet("apply", str(topo), env=env).returncode == 0
    _taken(log)
    topo.write_text(_topology(extra=True))  # another table changed right after the delta: in sync
    res = netns.kvmnet("apply", str(topo), env=dict(env, NFT_AFTER_LOAD="add table inet someone_else"))
    assert res.returncode == 0 and "change port forwards" in res.stdout, res.stdout + res.stderr
    assert f"nft -j list table inet {TABLE}" in _taken(log)  # the generation moved by two: listed
    assert netns.kvmnet("check", str(topo)).returncode == 0
    topo.write_text(_topology(extra=False))  # kvmnet's own map changed right after the delta
    sneak = f"add element inet {TABLE} fwd_any {{ tcp . 5555 : 10.61.0.10 . 22 }}"
    res = netns.kvmnet("apply", str(topo), env=dict(env, NFT_AFTER_LOAD=sneak))
    assert res.returncode == 1 and "after apply the host still differs" in res.stderr, res.stdout + res.stderr
    assert "rolled back" in res.stderr
    fixed = netns.kvmnet("apply", str(topo))
    assert "load firewall rules" in fixed.stdout and "its forwards are not what kvmnet loaded" in fixed.stdout
    assert "5555" not in netns.run("nft", "list", "table", "inet", TABLE).stdout
    netns.run("nft", "delete", "table", "inet", "someone_else")
    assert netns.kvmnet("destroy", str(topo)).returncode == 0


DUAL = """name = "delta"

[networks.lan]
mode = "nat"
bridge = "kvdl0"
subnet = "10.61.0.0/24"
subnet6 = "fd00:61::/64"
nat6 = true

[networks.lan.dhcp6]
start = "fd00:61::100"
end = "fd00:61::1ff"

[[networks.lan.forwards]]
host_port = 8080
guest = "g0"
guest_port = 80

[[networks.lan.forwards]]
proto = "udp"
host_addr = "fd00:99::2"
host_port = 5000
guest = "g0"
guest_port = 5000

[[networks.lan.forwards]]
host_addr = "192.0.2.1"
host_port = 2200
guest = "g0"
guest_port = 22
{more}
[guests.g0]
[[guests.g0.nics]]
network = "lan"
ip = "10.61.0.10"
ip6 = "fd00:61::10"
"""
MORE = """
[[networks.lan.forwards]]
host_port = 9090
guest = "g0"
guest_port = 90

[[networks.lan.forwards]]
proto = "udp"
host_addr = "fd00:99::2"
host_port = "6000-6001"
guest = "g0"
guest_port = "6000-6001"

[[networks.lan.forwards]]
host_addr = "192.0.2.1"
host_port = 2222
guest = "g0"
guest_port = 22
"""


def test_ipv6_and_host_address_forwards_change_by_delta_too(netns, tmp_path):
    topo = tmp_path / "delta.toml"
    topo.write_text(DUAL.format(more=""))
    assert netns.kvmnet("apply", str(topo)).returncode == 0
    handles, _ = _table(netns)
    for more in (MORE, ""):
        topo.write_text(DUAL.format(more=more))
        res = netns.kvmnet("apply", str(topo))
        assert res.returncode == 0 and "change port forwards in one transaction" in res.stdout, res.stdout + res.stderr
        now, delta_listing = _table(netns)
        assert now == handles
        netns.run("nft", "delete", "table", "inet", TABLE)
        assert "load firewall rules" in netns.kvmnet("apply", str(topo)).stdout
        handles, full = _table(netns)
        assert full == delta_listing
    assert netns.kvmnet("destroy", str(topo)).returncode == 0
