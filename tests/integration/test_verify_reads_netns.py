"""A verify reads back only the links its steps touched (engine/observe.touched_links): the
one-link read it uses says of every kind of link exactly what the dump says, in a real
namespace, and a small change to an applied topology verifies through it."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

pytestmark = pytest.mark.root

# both reads of every link, in the namespace: the dump, and one request per link by name
BOTH_READS = """
import json
import sys
from kvmnet.valueclass import asdict
from kvmnet.host import netlink
dump = netlink.read_links()
one_by_one = netlink.read_links_named(list(dump) + ["kn-none"])
print(json.dumps({"dump": {k: asdict(v) for k, v in dump.items()},
                  "named": {k: asdict(v) for k, v in one_by_one.items()}}))
"""


def test_reading_a_link_by_name_says_what_the_dump_says(netns):
    netns.sh("""
        ip link add kn-br type bridge stp_state 1 forward_delay 300 && ip link set kn-br mtu 1400 up
        ip link add kn-v0 type veth peer name kn-v1 && ip link set kn-v0 master kn-br group 7
        ip tuntap add kn-tap mode tap multi_queue && ip link set kn-tap master kn-br up
        ip tuntap add kn-tap1 mode tap
    """)
    seen = json.loads(netns.run(sys.executable, "-c", BOTH_READS).stdout)
    assert seen["named"] == seen["dump"]
    assert seen["dump"]["kn-tap"]["master"] == "kn-br" and seen["dump"]["kn-tap"]["multi_queue"] is True
    assert seen["dump"]["kn-br"]["stp"] is True and seen["dump"]["kn-v0"]["group"] == 7


def test_a_small_change_verifies_and_is_in_sync(netns, tmp_path):
    body = textwrap.dedent("""
        [networks.lab]
        mode = "nat"
        bridge = "kvvr0"
        subnet = "10.77.0.0/24"
        [guests.a]
        [[guests.a.nics]]
        network = "lab"
        ip = "10.77.0.10"
    """)
    path = tmp_path / "vr.toml"
    path.write_text(body)
    assert netns.kvmnet("apply", str(path)).returncode == 0
    path.write_text(body + '[guests.b]\n[[guests.b.nics]]\nnetwork = "lab"\nip = "10.77.0.11"\n')
    done = netns.kvmnet("apply", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("vr: applied 1 step(s); verified in sync\n")
    assert "create tap kn-vr-b-0 on bridge kvvr0" in done.stdout
    assert "already in sync" in netns.kvmnet("apply", str(path)).stdout
    assert netns.kvmnet("destroy", str(path)).returncode == 0
