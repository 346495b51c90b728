"""host/coexist.observe reads the host's FORWARD chain with the host's own iptables: its policy
and kvmnet's rules in it; with no iptables installed there is nothing to coexist with."""

from __future__ import annotations

import pytest

from kvmnet.host import coexist

LISTING = """-P FORWARD DROP
-A FORWARD -j DOCKER-USER
-A FORWARD -i kvbr0 -m comment --comment "kvmnet nat" -j ACCEPT
"""


def test_policy_and_kvmnets_rules_are_read(tmp_path, monkeypatch):
    tool = tmp_path / "iptables"
    lines = " ".join(f"'{line}'" for line in LISTING.splitlines())  # (printf: a shell builtin, PATH has no cat)
    tool.write_text(f"#!/bin/sh\n[ \"$*\" = '-w -S FORWARD' ] || exit 3\nprintf '%s\\n' {lines}\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert coexist.observe() == {"policy": "DROP",
                                 "rules": ['-A FORWARD -i kvbr0 -m comment --comment "kvmnet nat" -j ACCEPT']}


def test_ip6tables_is_read_only_when_asked(tmp_path, monkeypatch):
    for tool, policy in (("iptables", "ACCEPT"), ("ip6tables", "DROP")):
        (tmp_path / tool).write_text(f"#!/bin/sh\n[ \"$*\" = '-w -S FORWARD' ] || exit 3\necho > {tmp_path}/{tool}.ran\n"
                                     f"printf '%s\\n' '-P FORWARD {policy}' '-A FORWARD -o kv6 -m comment --comment \"kvmnet six\" -j ACCEPT'\n")
        (tmp_path / tool).chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    rule = '-A FORWARD -o kv6 -m comment --comment "kvmnet six" -j ACCEPT'
    assert coexist.observe() == {"policy": "ACCEPT", "rules": [rule]}
    assert (tmp_path / "iptables.ran").exists() and not (tmp_path / "ip6tables.ran").exists()
    assert coexist.observe(ipv6=True) == {"policy": "ACCEPT", "rules": [rule], "policy6": "DROP", "rules6": [rule]}


def test_a_failing_iptables_says_nothing(tmp_path, monkeypatch):
    tool = tmp_path / "iptables"
    tool.write_text("#!/bin/sh\nexit 4\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert coexist.observe() == {"policy": None, "rules": []}


@pytest.mark.parametrize("found", ["none", "not executable", "a directory"])
def test_without_an_iptables_to_run_there_is_no_chain_to_coexist_with(tmp_path, monkeypatch, found):
    if found == "not executable":
        (tmp_path / "iptables").write_text("#!/bin/sh\necho '-P FORWARD DROP'\n")
    elif found == "a directory":
        (tmp_path / "iptables").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path))
    assert coexist.observe() == {"policy": None, "rules": []}
