"""Removing guests by apply, in a real namespace: their taps are moved into the topology's
removal link group and deleted with it in one request; the taps that stay keep their group."""

from __future__ import annotations

import json
import textwrap

import pytest

from kvmnet import naming

pytestmark = pytest.mark.root

HEAD = textwrap.dedent("""
    [networks.lab]
    mode = "nat"
    bridge = "kvrm0"
    subnet = "10.78.0.0/24"
""")


def _guests(n: int) -> str:
    return "".join(f'[guests.g{i}]\n[[guests.g{i}.nics]]\nnetwork = "lab"\nip = "10.78.0.{10 + i}"\n' for i in range(n))


def _names(netns, selector: str = "") -> set[str]:
    """The names of the namespace's links (`selector`: e.g. "group 7")."""
    links = json.loads(netns.sh(f"ip -j link show {selector}").stdout or "[]")
    return {link["ifname"] for link in links if "ifname" in link}  # (a group filter lists {} for the rest)


def test_removed_taps_go_together_and_the_rest_stay_in_their_group(netns, tmp_path):
    path = tmp_path / "rm.toml"
    path.write_text(HEAD + _guests(6))
    assert netns.kvmnet("apply", str(path)).returncode == 0
    path.write_text(HEAD + _guests(2))
    done = netns.kvmnet("apply", str(path))
    assert done.returncode == 0, done.stderr
    assert "verified in sync" in done.stdout and done.stdout.count("delete link kn-rm-g") == 4
    assert {n for n in _names(netns) if n.startswith("kn-rm-")} == {"kn-rm-g0-0", "kn-rm-g1-0"}
    assert _names(netns, f"group {naming.link_group('rm')}") == {"kn-rm-g0-0", "kn-rm-g1-0"}
    assert _names(netns, f"group {naming.removal_group('rm')}") == set()
    assert "already in sync" in netns.kvmnet("apply", str(path)).stdout
    assert netns.kvmnet("destroy", str(path)).returncode == 0
    assert not [n for n in _names(netns) if n.startswith(("kn-rm-", "kvrm"))]
