"""The command line against an in-memory host: what each command prints, its exit code, and
what it leaves on the (fake) host and in the state dir. No root, no real network, no QEMU guest."""

from __future__ import annotations

import json
import os
import signal
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.fakertnl import FakeRtnl

from kvmnet import cli, config, engine
from kvmnet.engine import record as records
from kvmnet.host import qemu

ROOT = Path(__file__).resolve().parents[2]
NAT, ROUTED, USER, BRIDGE = (ROOT / "topologies" / f"{n}.toml" for n in ("nat", "routed", "user", "bridge"))
GOLDEN = ROOT / "tests" / "data" / "render"
NEEDS_ROOT = ("needs root (CAP_NET_ADMIN to change links, addresses and firewall rules); run it with sudo\n")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in ("KVMNET_STATE_DIR", "KVMNET_QEMU", "KVMNET_NETWORK", "KVMNET_TOPOLOGY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(qemu, "vhost_net", lambda: False)
    bare = tmp_path / "bin"  # no kvmnet-ifup next to "the interpreter" nor on PATH: bare names
    bare.mkdir()
    monkeypatch.setattr("sys.argv", [str(bare / "python")])
    monkeypatch.setenv("PATH", str(bare))


@pytest.fixture
def as_root(monkeypatch):
    monkeypatch.setattr(cli.cli_common, "is_root", lambda: True)


@pytest.fixture
def as_user(monkeypatch):
    monkeypatch.setattr(cli.cli_common, "is_root", lambda: False)


@pytest.fixture
def state(tmp_path):
    return tmp_path / "state"


@pytest.fixture
def kvmnet(state):
    def invoke(*args):
        return CliRunner().invoke(cli.main, ["--state-dir", str(state), *map(str, args)])
    return invoke


def applied(host, state, *paths):
    for path in paths:
        engine.apply(config.load(str(path)), str(state), host=host)
    host.ran.clear()
    return host.state()


# ---------------------------------------------------------------- validate


def test_validate_summarises_a_good_file(kvmnet):
    res = kvmnet("validate", NAT)
    assert (res.exit_code, res.stdout, res.stderr) == (
        0, f"{NAT}: file ok: topology nat; networks: default (nat); guests: 2\n"
           f"  run `kvmnet plan {NAT}` to check it against this host\n", "")


def test_validate_of_a_bad_file_gives_file_line_key_reason_and_exit_2(kvmnet, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[networks.default]\nmode = "nat"\nsubnet = "192.168.122.0/24"\n')
    res = kvmnet("validate", bad)
    assert (res.exit_code, res.stdout, res.stderr) == (2, "", f"{bad}:1: networks.default.bridge: is required\n")
    assert "Traceback" not in res.output


def test_validate_warns_about_a_world_writable_file(kvmnet, tmp_path):
    loose = tmp_path / "loose.toml"
    loose.write_text(USER.read_text())
    loose.chmod(0o666)
    res = kvmnet("validate", loose)
    assert res.exit_code == 0
    assert res.stderr == (f"kvmnet: {loose}: warning: the file is world-writable; anyone on this host can "
                          "change what kvmnet applies as root\n")
    assert res.stdout == (f"{loose}: file ok: topology loose; networks: slirp (user); guests: 1\n"
                          f"  run `kvmnet plan {loose}` to check it against this host\n")


def test_a_missing_file_is_an_input_error(kvmnet, tmp_path):
    res = kvmnet("validate", tmp_path / "nope.toml")
    assert (res.exit_code, res.stdout, res.stderr) == (2, "", f"{tmp_path / 'nope.toml'}: No such file or directory\n")


# ---------------------------------------------------------------- plan, apply


def test_plan_lists_the_steps_and_changes_nothing(kvmnet, host, state):
    before = host.state()
    res = kvmnet("plan", NAT)
    assert res.exit_code == 0
    lines = res.stdout.splitlines()
    assert lines[0] == f"nat: 9 step(s) to apply {NAT} (firewall: nftables):"
    assert lines[1].startswith("    1. create bridge virbr0 (stp on, forward delay 2 s, mac ")
    assert lines[5:7] == ["    3. add address 192.168.122.1/24 to virbr0", "       $ ip addr add 192.168.122.1/24 dev virbr0"]
    assert lines[-2:] == ["    9. start dnsmasq for default on virbr0",
                          f"       $ dnsmasq --conf-file={state}/nat/dnsmasq-default.conf"]
    assert len(lines) == 1 + 2 * 9
    assert host.state() == before and host.ran == []
    assert not (state / "nat" / "state.json").exists()


def test_plan_json_and_the_firewall_option(kvmnet, host):
    res = kvmnet("plan", NAT, "--json", "--firewall", "iptables")
    assert res.exit_code == 0
    doc = json.loads(res.stdout)
    assert (doc["topology"], doc["firewall"]) == ("nat", "iptables")
    assert [s["key"] for s in doc["steps"]] == [
        "link:virbr0", "sysctl:net/ipv6/conf/virbr0/disable_ipv6", "addr:virbr0:192.168.122.1/24",
        "link:kn-nat-web-0", "link:kn-nat-other-0", "sysctl:net/ipv4/ip_forward",
        "sysctl:net/ipv4/conf/virbr0/route_localnet", "firewall:iptables:kvmnet_nat", "dnsmasq:nat:default"]


def test_plan_of_an_applied_topology_has_nothing_to_do(kvmnet, host, state):
    applied(host, state, NAT)
    res = kvmnet("plan", NAT)
    assert (res.exit_code, res.stdout) == (0, f"nat: in sync with {NAT}; nothing to do (firewall: nftables)\n")


def test_apply_dry_run_is_the_plan(kvmnet, host, as_user):
    res = kvmnet("apply", "--dry-run", NAT)
    assert res.exit_code == 0
    assert res.stdout == kvmnet("plan", NAT).stdout
    assert host.ran == []


@pytest.mark.parametrize("command", [("apply", NAT), ("destroy", NAT), ("run", BRIDGE, "vm1")])
def test_changing_commands_need_root(command, kvmnet, host, as_user, monkeypatch, tmp_path):
    monkeypatch.setenv("KVMNET_QEMU", str(fake_qemu(tmp_path)))
    res = kvmnet(*command, *(["--accel", "tcg"] if command[0] == "run" else []))
    assert res.exit_code == 1
    assert res.stderr.splitlines()[-1] + "\n" == f"kvmnet {command[0]}: {NEEDS_ROOT}"
    assert host.ran == []


def test_apply_changes_the_host_then_reapply_changes_nothing(kvmnet, host, as_root, state):
    res = kvmnet("apply", NAT)
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[0] == "nat: applied 9 step(s); verified in sync"
    assert "virbr0" in host.links_ and host.links_["kn-nat-web-0"]["master"] == "virbr0"
    assert records.load(str(state), "nat").file == str(NAT)
    ran = len(host.ran)
    again = kvmnet("apply", NAT)
    assert (again.exit_code, again.stdout) == (0, "nat: already in sync; nothing changed\n")
    assert len(host.ran) == ran


def test_a_host_failure_rolls_back_and_exits_1(kvmnet, host, as_root, state):
    before = host.state()
    host.fail(at=3)  # the 4th step: creating tap kn-nat-web-0
    res = kvmnet("apply", NAT)
    assert res.exit_code == 1 and res.stdout == ""
    assert res.stderr.splitlines() == [
        "kvmnet: apply failed at step 4 (create tap kn-nat-web-0 on bridge virbr0): fake host: tap.add failed (as told)",
        "rolled back:",
        "  delete link kn-nat-web-0",
        "  remove address 192.168.122.1/24 from virbr0",
        "  delete link virbr0"]
    assert host.state() == before


def test_a_conflict_with_the_host_is_refused_before_any_change(kvmnet, host, as_root, state):
    host._bridge_add({"name": "virbr0", "stp": False, "forward_delay": 0})  # someone else's virbr0
    before = host.state()
    res = kvmnet("apply", NAT)
    assert res.exit_code == 2 and res.stdout == ""
    assert "virbr0" in res.stderr and "Traceback" not in res.stderr
    assert host.state() == before and host.ran == []


# ---------------------------------------------------------------- destroy


def test_destroy_removes_what_apply_made(kvmnet, host, as_root, state):
    before = host.state()
    applied(host, state, NAT)
    res = kvmnet("destroy", NAT)
    assert res.exit_code == 0
    lines = res.stdout.splitlines()
    assert lines[0] == "nat: destroyed (6 step(s))"
    assert lines[1::2] == [
        "    1. stop dnsmasq for default", "    2. remove kvmnet's firewall rules (nftables: table inet kvmnet_nat)",
        "    3. set sysctl net.ipv4.ip_forward = 0", "    4. delete 2 taps (link group 1263433489)",
        "    5. remove address 192.168.122.1/24 from virbr0", "    6. delete link virbr0"]
    assert lines[-1] == "       $ ip link del virbr0"
    assert host.state() == before
    again = kvmnet("destroy", NAT)
    assert (again.exit_code, again.stdout) == (0, "nat: nothing to destroy\n")


def test_destroy_force_cleans_up_after_a_corrupt_record(kvmnet, host, as_root, state):
    before = host.state()
    applied(host, state, NAT)
    (state / "nat" / "state.json").write_text("{not json")
    refused = kvmnet("destroy", NAT)
    assert refused.exit_code == 2
    assert ": record is corrupt: " in refused.stderr and "kvmnet destroy --force FILE" in refused.stderr
    assert "virbr0" in host.links_
    res = kvmnet("destroy", "--force", NAT)
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("nat: destroyed (")
    assert "virbr0" not in host.links_ and "kn-nat-web-0" not in host.links_
    assert host.dnsmasqs == {} and host.nft_tables == {}
    assert host.state()["links"] == before["links"]


# ---------------------------------------------------------------- check, status


def test_check_exits_0_in_sync_and_1_with_the_drift(kvmnet, host, state):
    applied(host, state, NAT)
    ok = kvmnet("check", NAT)
    assert (ok.exit_code, ok.stdout) == (0, f"nat: in sync with {NAT}\n")
    host.dnsmasqs.clear()
    host.links_["kn-nat-web-0"]["up"] = False
    res = kvmnet("check", NAT)
    assert res.exit_code == 1
    assert res.stdout.splitlines() == [f"nat: drifted from {NAT}; `kvmnet apply` would:",
                                       "  link:kn-nat-web-0: set link kn-nat-web-0 up",
                                       "  dnsmasq:nat:default: start dnsmasq for default on virbr0"]
    doc = json.loads(kvmnet("check", "--json", NAT).stdout)
    assert doc == {"version": 1, "topology": "nat", "in_sync": False,
                   "drift": [{"key": "link:kn-nat-web-0", "repair": "set link kn-nat-web-0 up"},
                             {"key": "dnsmasq:nat:default", "repair": "start dnsmasq for default on virbr0"}]}


def test_check_json_in_sync(kvmnet, host, state):
    applied(host, state, NAT)
    res = kvmnet("check", "--json", NAT)
    assert res.exit_code == 0
    assert json.loads(res.stdout) == {"version": 1, "topology": "nat", "in_sync": True, "drift": []}


def test_status_of_an_empty_state_dir(kvmnet, state):
    res = kvmnet("status")
    assert (res.exit_code, res.stdout) == (0, f"nothing applied (state dir {state})\n")
    doc = json.loads(kvmnet("status", "--json").stdout)
    assert doc == {"version": 1, "state_dir": str(state), "topologies": []}


def test_status_lists_what_is_applied_and_with_a_file_its_drift(kvmnet, host, state):
    applied(host, state, NAT, ROUTED)
    res = kvmnet("status")
    assert res.stdout.splitlines() == [f"nat: 9 object(s) from {NAT} (firewall: nftables)",
                                       f"routed: 7 object(s) from {ROUTED} (firewall: nftables)"]
    assert kvmnet("status", ROUTED).stdout == f"routed: 7 object(s) from {ROUTED} (firewall: nftables); in sync\n"
    host.dnsmasqs.clear()
    res = kvmnet("status", NAT)
    assert res.stdout == (f"nat: 9 object(s) from {NAT} (firewall: nftables); "
                          "drifted: start dnsmasq for default on virbr0\n")
    doc = json.loads(kvmnet("status", "--json", NAT).stdout)
    assert doc["topologies"] == [{"topology": "nat", "file": str(NAT), "objects": 9, "firewall": "nftables",
                                  "drift": ["start dnsmasq for default on virbr0"]}]


def test_status_and_leases_report_a_corrupt_record(kvmnet, host, state):
    applied(host, state, NAT)
    (state / "nat" / "state.json").write_text('{"topology": ')
    status = kvmnet("status")  # a corrupt record is listed, never fatal to the others
    assert status.exit_code == 0, status.output
    assert status.stdout.startswith(f"nat: {state}/nat/state.json: record is corrupt: ")
    leases = kvmnet("leases")
    assert leases.exit_code == 0 and leases.stdout == "no leases\n"
    assert leases.stderr.startswith(f"kvmnet: {state}/nat/state.json: record is corrupt")


# ---------------------------------------------------------------- leases


def test_leases_reads_dnsmasqs_lease_files(kvmnet, host, state):
    assert kvmnet("leases").stdout == "no leases\n"
    applied(host, state, NAT, ROUTED)
    (state / "nat" / "dnsmasq-default.leases").write_text(
        "1700000000 52:54:00:12:34:56 192.168.122.10 web 01:52:54:00:12:34:56\n"
        "1700000001 52:54:00:d5:ee:a8 192.168.122.77 * *\n")
    (state / "routed" / "dnsmasq-lab.leases").write_text("1700000002 52:54:00:aa:bb:cc 10.80.0.5 db *\n")
    res = kvmnet("leases")
    assert res.exit_code == 0
    assert res.stdout.splitlines() == [
        "default      192.168.122.10   52:54:00:12:34:56  web",
        "default      192.168.122.77   52:54:00:d5:ee:a8  -",
        "lab          10.80.0.5        52:54:00:aa:bb:cc  db"]
    assert kvmnet("leases", "lab").stdout == "lab          10.80.0.5        52:54:00:aa:bb:cc  db\n"
    doc = json.loads(kvmnet("leases", "--json", "lab").stdout)
    assert doc == {"version": 1, "leases": [{"expiry": 1700000002, "mac": "52:54:00:aa:bb:cc", "ip": "10.80.0.5",
                               "hostname": "db", "topology": "routed", "network": "lab"}]}


def test_leases_shows_dhcpv6_leases_after_the_duid_line(kvmnet, host, state):
    applied(host, state, NAT)
    (state / "nat" / "dnsmasq-default.leases").write_text(
        "1700000000 52:54:00:12:34:56 192.168.122.10 web 01:52:54:00:12:34:56\n"
        "duid 00:01:00:01:2e:8f:11:22:52:54:00:aa:00:01\n"
        "1700000005 1236 fd00:61::10 web 00:01:00:01:2e:8f:10:00:52:54:00:12:34:56\n"
        "1700000006 T77 fd00:61::1a2 * 00:02:00:00:ab:11:01:02:03:04\n")
    res = kvmnet("leases")
    assert res.stdout.splitlines() == [
        "default      192.168.122.10   52:54:00:12:34:56  web",
        "default      fd00:61::10      52:54:00:12:34:56  web",  # the MAC in the client's DUID-LLT
        "default      fd00:61::1a2     -                  -"]  # a DUID-EN names no MAC
    doc = json.loads(kvmnet("leases", "--json").stdout)
    assert doc["leases"][1] == {"expiry": 1700000005, "mac": "52:54:00:12:34:56", "ip": "fd00:61::10", "hostname": "web",
                                "iaid": "1236", "duid": "00:01:00:01:2e:8f:10:00:52:54:00:12:34:56",
                                "topology": "nat", "network": "default"}


# ---------------------------------------------------------------- qemu-args


def golden(case: str, guest: str, header: str) -> list[str]:
    """The lines under `header` in tests/data/render/CASE/qemu-GUEST.txt."""
    lines = (GOLDEN / case / f"qemu-{guest}.txt").read_text().splitlines()
    start = lines.index(header) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("#")), len(lines))
    return lines[start:end]


@pytest.mark.parametrize("case, guest", [("nat", "web"), ("user", "devbox"), ("socket", "a"), ("bridge", "vm1")])
def test_qemu_args_match_the_golden_renders(case, guest, kvmnet, monkeypatch):
    path = next(p for p in (ROOT / "topologies").glob(f"{case}.toml"))
    res = kvmnet("qemu-args", path, guest)
    assert (res.exit_code, res.stdout.splitlines()) == (0, golden(case, guest, "# --syntax netdev"))
    if case != "socket":
        legacy = kvmnet("qemu-args", "--syntax", "legacy", "--hooks", path, guest)
        assert legacy.stdout.splitlines() == golden(case, guest, "# --syntax legacy --hooks")
    monkeypatch.setattr(qemu, "vhost_net", lambda: True)
    hooks = kvmnet("qemu-args", "--hooks", path, guest)
    assert hooks.stdout.splitlines() == golden(case, guest, "# --syntax netdev --hooks (vhost-net present)")


def test_qemu_args_json(kvmnet):
    res = kvmnet("qemu-args", "--json", NAT, "web")
    assert json.loads(res.stdout) == {"version": 1, "guest": "web", "nics": [{
        "network": "default", "mac": "52:54:00:12:34:56", "tap": "kn-nat-web-0",
        "args": ["-netdev", "tap,id=net0,ifname=kn-nat-web-0,script=no,downscript=no",
                 "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56"]}]}


def test_qemu_args_refusals(kvmnet):
    res = kvmnet("qemu-args", NAT, "nobody")
    assert (res.exit_code, res.stdout, res.stderr) == (2, "", f"{NAT}: no guest 'nobody'\n")
    res = kvmnet("qemu-args", "--syntax", "legacy", ROOT / "topologies" / "socket.toml", "a")
    assert res.exit_code == 2
    assert res.stderr == ("guests.a: the legacy -net syntax joins every NIC to one hub (QEMU has no vlan= any more); "
                          "this guest has 2 NICs: use --syntax netdev\n")


# ---------------------------------------------------------------- run


def fake_qemu(tmp_path, backends=("socket", "tap", "user"), status=7) -> Path:
    """A stand-in for qemu-system-x86_64: lists BACKENDS for `-netdev help`, otherwise writes
    its arguments to EXE.args and exits STATUS (no guest is started)."""
    exe = tmp_path / "qemu-fake"
    lines = "\\n".join(("Available netdev backend types:",) + tuple(backends))
    exe.write_text("#!/bin/sh\n"
                   f"if [ \"$1\" = -netdev ] && [ \"$2\" = help ]; then printf '{lines}\\n'; exit 0; fi\n"
                   "printf '%s\\n' \"$@\" > \"$0.args\"\n"
                   f"exit {status}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return exe


@pytest.fixture
def keep_signals():
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_run_dry_run_prints_the_command(kvmnet, host, tmp_path, monkeypatch, as_user):
    exe = fake_qemu(tmp_path)
    monkeypatch.setenv("KVMNET_QEMU", str(exe))
    res = kvmnet("run", "--dry-run", "--accel", "tcg", NAT, "web", "--", "-snapshot")
    assert res.exit_code == 0 and res.stdout == ""
    assert res.stderr == (f"kvmnet: would run: {exe} -accel tcg -m 512 -smp 1 -netdev "
                          "tap,id=net0,ifname=kn-nat-web-0,script=no,downscript=no "
                          "-device virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56 -snapshot\n")
    assert host.ran == [] and not (exe.parent / "qemu-fake.args").exists()


def test_run_chooses_the_accelerator_and_says_why(kvmnet, tmp_path, monkeypatch):
    monkeypatch.setenv("KVMNET_QEMU", str(fake_qemu(tmp_path)))
    monkeypatch.setattr(qemu, "kvm_works", lambda exe: (False, "/dev/kvm is missing or not accessible"))
    res = kvmnet("run", "--dry-run", USER, "devbox")
    assert res.stderr.splitlines()[0] == ("kvmnet: accelerator: TCG (software emulation, slow): "
                                          "/dev/kvm is missing or not accessible")
    assert " -accel tcg -m 1024 -smp 2 " in res.stderr
    monkeypatch.setattr(qemu, "kvm_works", lambda exe: (True, "KVM works"))
    res = kvmnet("run", "--dry-run", USER, "devbox")
    assert res.stderr.splitlines()[0] == "kvmnet: accelerator: KVM"
    assert " -accel kvm -m 1024 -smp 2 -cpu host " in res.stderr


def test_run_starts_qemu_and_exits_with_its_status(kvmnet, host, tmp_path, monkeypatch, keep_signals, as_user):
    exe = fake_qemu(tmp_path, status=7)
    monkeypatch.setenv("KVMNET_QEMU", str(exe))
    res = kvmnet("run", "--accel", "tcg", USER, "devbox", "--", "-nographic")
    assert res.exit_code == 7
    assert res.stderr.startswith(f"kvmnet: running: {exe} -accel tcg ")
    args = (tmp_path / "qemu-fake.args").read_text().splitlines()
    assert args[:6] == ["-accel", "tcg", "-m", "1024", "-smp", "2"]
    assert args[-1] == "-nographic" and "-netdev" in args
    assert host.ran == []  # a user-mode network needs nothing on the host, nor root


def test_run_applies_a_bridged_topology_first(kvmnet, host, tmp_path, monkeypatch, keep_signals, as_root, state):
    exe = fake_qemu(tmp_path, status=0)
    monkeypatch.setenv("KVMNET_QEMU", str(exe))
    res = kvmnet("run", "--accel", "tcg", NAT, "web")
    assert res.exit_code == 0, res.output
    assert host.links_["kn-nat-web-0"]["master"] == "virbr0" and host.dnsmasqs
    assert records.load(str(state), "nat").file == str(NAT)
    assert "ifname=kn-nat-web-0,script=no,downscript=no" in (tmp_path / "qemu-fake.args").read_text()


def test_run_reports_a_qemu_that_cannot_start(kvmnet, tmp_path, monkeypatch):
    missing = tmp_path / "gone" / "qemu-system-x86_64"
    monkeypatch.setenv("KVMNET_QEMU", str(missing))
    monkeypatch.setattr(qemu, "netdev_backends", lambda exe: frozenset({"user"}))
    res = kvmnet("run", "--accel", "tcg", USER, "devbox")
    assert res.exit_code == 1
    assert res.stderr.splitlines()[-1] == (f"kvmnet: QEMU failed to start: [Errno 2] No such file or directory: "
                                           f"'{missing}'")


def test_run_refusals_exit_2(kvmnet, tmp_path, monkeypatch):
    monkeypatch.setenv("KVMNET_QEMU", str(fake_qemu(tmp_path, backends=("socket", "tap"))))
    res = kvmnet("run", "--accel", "tcg", USER, "devbox")
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.endswith("(QEMU built without slirp)\n")
    res = kvmnet("run", "--accel", "tcg", USER, "nobody")
    assert (res.exit_code, res.stderr) == (2, f"{USER}: no guest 'nobody' (guests: devbox)\n")


# ---------------------------------------------------------------- ifup, ifdown


def test_ifup_and_ifdown_commands(kvmnet, host, state, monkeypatch):
    applied(host, state, NAT)
    links = FakeRtnl(host).install(monkeypatch)
    links.add_tap("tap7")
    res = kvmnet("ifup", "tap7")
    assert (res.exit_code, res.stdout, res.stderr) == (0, "", "tap7: attached to virbr0 (default)\n")
    assert host.links_["tap7"]["master"] == "virbr0"
    res = kvmnet("ifdown", "tap7")
    assert (res.exit_code, res.stderr) == (0, "tap7: detached\n")
    assert host.links_["tap7"]["master"] is None


def test_ifup_and_ifdown_errors(kvmnet, host, state, monkeypatch):
    applied(host, state, NAT)
    FakeRtnl(host).install(monkeypatch)
    res = kvmnet("ifup", "--network", "lab", "tap7")
    assert res.exit_code == 2
    assert res.stderr == ("network lab is not applied here; run `kvmnet apply FILE` first "
                          "or set KVMNET_TOPOLOGY=FILE for the hook\n")
    res = kvmnet("ifdown", "tap!")
    assert (res.exit_code, res.stderr) == (
        2, "'tap!' is not a valid interface name (letters, digits, '_', '-', '.' only)\n")


def test_state_dir_from_the_environment(host, monkeypatch, tmp_path):
    applied(host, tmp_path / "env-state", NAT)
    monkeypatch.setenv("KVMNET_STATE_DIR", str(tmp_path / "env-state"))
    res = CliRunner().invoke(cli.main, ["status"])
    assert res.stdout == f"nat: 9 object(s) from {NAT} (firewall: nftables)\n"
    assert os.path.isdir(tmp_path / "env-state" / "nat")
