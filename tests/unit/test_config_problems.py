"""How a file's problems are reported: in line order, each independent problem once, and no
consequence of one already reported (a NIC on a network whose definition failed is not on an
"unknown network"). And what validation decides from the file alone (iptables + spoof_protection)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers.configtext import problems

ROOT = Path(__file__).resolve().parents[2]


NAT_WITH_TYPOS = """\
    [networks.default]
    mode = "nta"
    bridge = "virbr0"
    subnte = "192.168.122.0/24"

    [[networks.default.forwards]]
    host_port = 8080
    guest = "web"

    [guests.web]
    memroy = 512
    [[guests.web.nics]]
    network = "default"
    [guests.other]
    [[guests.other.nics]]
    network = "default"
    model = "virtio-nett"
    """


def test_a_wrong_mode_brings_no_cascade_and_hides_no_other_typo():
    assert problems(NAT_WITH_TYPOS) == [
        "t.toml:2: networks.default.mode: unknown mode 'nta' (one of nat, routed, isolated, bridge, user, socket, direct, vde, passt)",
        "t.toml:4: networks.default.subnte: unknown key (no network mode has it)",
        "t.toml:11: guests.web.memroy: unknown key (allowed: nics, memory, cpus, kernel, initrd, append, disk, qemu_args, queues)",
        "t.toml:17: guests.other.nics[0].model: unknown NIC model 'virtio-nett' (one of virtio-net-pci, virtio-net, e1000, "
        "e1000e, rtl8139, ne2k_pci, pcnet, vmxnet3, i82559er, usb-net)",
    ]


def test_a_missing_mode_still_reports_the_typos_next_to_it():
    assert problems("""\
        [networks.lab]
        bridge = "br0"
        brige = "br1"
        """) == ["t.toml:1: networks.lab.mode: is required", "t.toml:3: networks.lab.brige: unknown key (no network mode has it)"]


def test_problems_come_in_line_order():
    """Guests are read before forwards and cross-checks run last: the output is by line anyway."""
    found = problems("""\
        [networks.default]
        mode = "nat"
        bridge = "virbr0"
        subnet = "192.168.122.0/24"
        [[networks.default.forwards]]
        host_port = 8080
        guest = "nobody"
        [guests.web]
        cpus = 0
        [[guests.web.nics]]
        network = "elsewhere"
        """)
    assert found == ["t.toml:7: networks.default.forwards[0].guest: unknown guest 'nobody'",
                     "t.toml:9: guests.web.cpus: 0 is outside 1-1024",
                     "t.toml:11: guests.web.nics[0].network: unknown network 'elsewhere'"]


def test_a_bad_subnet_is_reported_once_not_again_by_each_static_ip():
    assert problems("""\
        [networks.lab]
        mode = "isolated"
        bridge = "kvmiso0"
        subnet = "10.0.0.0/33"
        [guests.a]
        [[guests.a.nics]]
        network = "lab"
        ip = "10.0.0.5"
        """) == ["t.toml:4: networks.lab.subnet: '10.0.0.0/33' is not a subnet in CIDR form (like 192.168.122.0/24)"]


def test_a_forward_to_a_guest_whose_nic_is_wrong_reports_the_nic_only():
    assert problems("""\
        [networks.default]
        mode = "nat"
        bridge = "virbr0"
        subnet = "192.168.122.0/24"
        [[networks.default.forwards]]
        host_port = 8080
        guest = "web"
        [guests.web]
        [[guests.web.nics]]
        network = "default"
        ip = "192.168.122.300"
        """) == ["t.toml:11: guests.web.nics[0].ip: '192.168.122.300' is not an IPv4 address"]


SPOOF_IPTABLES = """\
    firewall = "iptables"
    [networks.lab]
    mode = "isolated"
    bridge = "kvmiso0"
    subnet = "10.0.0.0/24"
    spoof_protection = true
    """


def test_spoof_protection_with_the_files_iptables_backend_is_refused_at_validation():
    assert problems(SPOOF_IPTABLES) == [
        't.toml:6: networks.lab.spoof_protection: needs the nftables backend (bridge-level rules), but this file sets '
        'firewall = "iptables"; drop one of them']


def test_spoof_protection_with_unprivileged_taps_is_refused():
    """A tap a user attaches through qemu-bridge-helper is no guest's: nothing would filter it."""
    assert problems(SPOOF_IPTABLES.replace('firewall = "iptables"\n', "").replace("isolated", "nat")
                    + "    allow_unprivileged = true\n") == [
        "t.toml:6: networks.lab.allow_unprivileged: cannot go with spoof_protection: taps users attach through "
        "qemu-bridge-helper are no guest's, so nothing would check what they send"]


def test_validate_says_what_it_checked(tmp_path, topo_dir):
    res = subprocess.run([sys.executable, "-m", "kvmnet.cli", "validate", str(topo_dir / "nat.toml")],
                         capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert (res.returncode, res.stderr) == (0, "")
    assert res.stdout == (f"{topo_dir / 'nat.toml'}: file ok: topology nat; networks: default (nat); guests: 2\n"
                          f"  run `kvmnet plan {topo_dir / 'nat.toml'}` to check it against this host\n")
