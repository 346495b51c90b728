"""Session fixtures of the libvirt differential suite: the host's own network state before
anything starts, and ONE twin lab (one libvirtd, one kvmnet host namespace, a wan each) shared
by every scenario, because starting libvirtd is the slow part."""

from __future__ import annotations

import subprocess

import pytest

from helpers.netns import is_root

import libvirtd
from twinlab import TwinLab


def host_network_state() -> dict:
    """This machine's own firewall and links (the suite must leave them as they were)."""
    def out(*argv):
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    return {"nft": out("nft", "list", "ruleset"), "iptables": _without_counters(out("iptables-save")),
            "links": out("ip", "-br", "link")}


def _without_counters(text: str) -> str:
    return "\n".join(l.split(" [")[0] if l.startswith(":") else l for l in text.splitlines() if not l.startswith("#"))


@pytest.fixture(scope="session")
def host_before():
    return host_network_state()


@pytest.fixture(scope="session")
def twin(host_before):
    if not is_root():
        pytest.skip("needs root: runs libvirtd and kvmnet in network namespaces")
    why = libvirtd.missing()
    if why:
        pytest.skip(why)
    try:
        lab = TwinLab()
    except libvirtd.Unavailable as exc:
        pytest.skip(str(exc))
    try:
        yield lab
    finally:
        lab.close()
