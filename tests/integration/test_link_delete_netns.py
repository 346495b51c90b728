"""A link.del step deletes only a link of a kind kvmnet makes: a record (corrupt, or written by
someone with root) that names the host's NIC, a veth or lo deletes nothing."""

import os
import sys

import pytest

from helpers.netns import ROOT

pytestmark = pytest.mark.root

PROBE = """
import sys
from kvmnet.engine.steps import Step
from kvmnet.errors import HostError
from kvmnet.host import executor
try:
    executor.run(Step("link.del", {"name": sys.argv[1]}))
    print("deleted")
except HostError as exc:
    print("refused:", exc)
"""


def _delete(netns, name: str) -> str:
    return netns.run(sys.executable, "-c", PROBE, name, env=dict(os.environ, PYTHONPATH=str(ROOT))).stdout.strip()


def test_only_kinds_kvmnet_makes_are_deleted(netns):
    netns.sh("ip link add eth9 type veth peer name eth9p && ip link add kvbr9 type bridge && "
             "ip tuntap add kvtap9 mode tap")
    assert _delete(netns, "eth9").startswith("refused: not deleting eth9: a veth link, not a kind kvmnet makes")
    assert _delete(netns, "lo").startswith("refused: not deleting lo: a device link")
    assert _delete(netns, "kvbr9") == "deleted"
    assert _delete(netns, "kvtap9") == "deleted"
    assert _delete(netns, "gone0") == "deleted"  # already gone: done
    links = netns.run("ip", "-br", "link").stdout
    assert "eth9" in links and "lo" in links and "kvbr9" not in links and "kvtap9" not in links
