"""QEMU's script=/downscript= hooks against an in-memory host: which network a tap joins, the
slow path that applies a topology first, ifdown's cases, and the kvmnet-ifup/-ifdown entry points."""

from __future__ import annotations

import errno
import sys
from pathlib import Path

import pytest
from helpers.fakertnl import FakeRtnl

from kvmnet import config, engine, hook, hook_main
from kvmnet.engine import record as records
from kvmnet.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
NAT, ROUTED = ROOT / "topologies" / "nat.toml", ROOT / "topologies" / "routed.toml"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in ("KVMNET_NETWORK", "KVMNET_TOPOLOGY", "KVMNET_VERBOSE", "KVMNET_STATE_DIR"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def links(host, monkeypatch):
    return FakeRtnl(host).install(monkeypatch)


def applied(host, root, *paths):
    for path in paths:
        engine.apply(config.load(str(path)), str(root), host=host)
    host.ran.clear()


# ---------------------------------------------------------------- ifup: which network


def test_ifup_attaches_a_qemu_tap_to_the_only_applied_network_with_its_mtu(host, links, tmp_path):
    applied(host, tmp_path, NAT)
    host.links_["virbr0"]["mtu"] = 1400
    links.add_tap("tap7")
    assert hook.ifup("tap7", None, str(tmp_path)) == "tap7: attached to virbr0 (default)"
    tap = host.links_["tap7"]
    assert (tap["master"], tap["mtu"], tap["up"]) == ("virbr0", 1400, True)
    assert host.ran == []  # the fast path changes no topology object


def test_ifup_of_a_topologys_own_tap_uses_its_record(host, links, tmp_path):
    applied(host, tmp_path, NAT, ROUTED)
    host.links_["kn-routed-db-0"].update(master=None, up=False)
    assert hook.ifup("kn-routed-db-0", None, str(tmp_path)) == "kn-routed-db-0: attached to kvmrt0 (lab)"
    assert host.links_["kn-routed-db-0"]["master"] == "kvmrt0"


def test_ifup_with_several_networks_needs_to_be_told_which(host, links, tmp_path):
    applied(host, tmp_path, NAT, ROUTED)
    links.add_tap("tap7")
    with pytest.raises(InputError) as exc:
        hook.ifup("tap7", None, str(tmp_path))
    assert str(exc.value) == ("tap7: several networks are applied (default, lab); "
                              "say which with --network or KVMNET_NETWORK")
    assert host.links_["tap7"]["master"] is None


def test_ifup_network_option_and_environment(host, links, tmp_path, monkeypatch):
    applied(host, tmp_path, NAT, ROUTED)
    links.add_tap("tap7")
    links.add_tap("tap8")
    assert hook.ifup("tap7", "lab", str(tmp_path)) == "tap7: attached to kvmrt0 (lab)"
    monkeypatch.setenv("KVMNET_NETWORK", "default")
    assert hook.ifup("tap8", None, str(tmp_path)) == "tap8: attached to virbr0 (default)"
    assert (host.links_["tap7"]["master"], host.links_["tap8"]["master"]) == ("kvmrt0", "virbr0")


def test_ifup_finds_the_state_dir_in_the_environment(host, links, tmp_path, monkeypatch):
    applied(host, tmp_path, NAT)
    links.add_tap("tap7")
    monkeypatch.setenv("KVMNET_STATE_DIR", str(tmp_path))
    assert hook.ifup("tap7") == "tap7: attached to virbr0 (default)"


def test_an_unreadable_hook_index_is_skipped(host, links, tmp_path):
    applied(host, tmp_path, NAT)
    (tmp_path / "nat" / "hooks").unlink()
    (tmp_path / "stray").mkdir()
    links.add_tap("tap7")
    with pytest.raises(InputError, match=r"network \(unknown\) is not applied here; run `kvmnet apply FILE`"):
        hook.ifup("tap7", None, str(tmp_path))


# ---------------------------------------------------------------- ifup: the slow path


def test_ifup_applies_the_topology_named_by_kvmnet_topology_first(host, links, tmp_path, monkeypatch):
    links.add_tap("tap7")
    monkeypatch.setenv("KVMNET_TOPOLOGY", str(NAT))
    assert hook.ifup("tap7", None, str(tmp_path)) == "tap7: attached to virbr0 (default)"
    assert "bridge.add" in host.ops() and "dnsmasq.start" in host.ops()
    assert records.load(str(tmp_path), "nat").file == str(NAT)
    assert host.links_["tap7"]["master"] == "virbr0"
    assert engine.compute(config.load(str(NAT)), str(tmp_path), host=host)[2] == []


def test_ifup_reapplies_from_the_record_when_the_bridge_is_gone(host, links, tmp_path):
    applied(host, tmp_path, NAT)
    host._link_del({"name": "virbr0"})
    links.add_tap("tap7")
    assert hook.ifup("tap7", None, str(tmp_path)) == "tap7: attached to virbr0 (default)"
    assert host.ops()[0] == "bridge.add"
    assert host.links_["tap7"]["master"] == "virbr0"


def test_ifup_reapplies_the_text_root_applied_not_the_file_as_edited_since(host, links, tmp_path):
    """Whoever can write the applied file (a user's lab.toml) must not get an edit applied as root
    by a guest's start: the hook applies the text kept in the state dir."""
    lab = tmp_path / "lab.toml"
    lab.write_text(NAT.read_text())
    root = tmp_path / "state"
    applied(host, root, lab)
    lab.write_text(NAT.read_text().replace('bridge = "virbr0"', 'bridge = "evil0"'))
    host._link_del({"name": "virbr0"})
    links.add_tap("tap7")
    assert hook.ifup("tap7", None, str(root)) == "tap7: attached to virbr0 (default)"
    assert "evil0" not in host.links_ and host.links_["tap7"]["master"] == "virbr0"
    assert records.load(str(root), "lab").file == str(lab)


def test_ifup_without_an_applied_text_says_to_apply_again(host, links, tmp_path):
    applied(host, tmp_path, NAT)
    for f in (tmp_path / "nat").glob("source-*.toml"):  # (a record of a kvmnet that kept no text)
        f.unlink()
    host._link_del({"name": "virbr0"})
    links.add_tap("tap7")
    with pytest.raises(InputError, match=f"^network default: the state dir keeps no applied text of {NAT}; "
                                         f"run `kvmnet apply {NAT}` again$"):
        hook.ifup("tap7", None, str(tmp_path))
    assert "virbr0" not in host.links_


def test_ifup_without_an_applied_network_or_a_topology_file_says_what_to_do(host, links, tmp_path):
    links.add_tap("tap7")
    with pytest.raises(InputError) as exc:
        hook.ifup("tap7", "lab", str(tmp_path))
    assert str(exc.value) == ("network lab is not applied here; run `kvmnet apply FILE` first "
                              "or set KVMNET_TOPOLOGY=FILE for the hook")
    assert host.ran == [] and host.links_["tap7"]["master"] is None


def test_ifup_of_a_network_the_applied_topology_lacks(host, links, tmp_path, monkeypatch):
    links.add_tap("tap7")
    monkeypatch.setenv("KVMNET_TOPOLOGY", str(NAT))
    with pytest.raises(InputError, match="^network nowhere is not in the applied topology$"):
        hook.ifup("tap7", "nowhere", str(tmp_path))
    assert host.links_["tap7"]["master"] is None


@pytest.mark.parametrize("bad, why", [
    ("", "interface name is empty"),
    ("tap;reboot", "'tap;reboot' is not a valid interface name (letters, digits, '_', '-', '.' only)"),
    ("a-very-long-tap-name", "'a-very-long-tap-name' is 20 bytes; interface names are at most 15 bytes"),
])
def test_bad_tap_names_are_refused_before_anything_is_read(bad, why, host, links, tmp_path):
    for action in (lambda: hook.ifup(bad, None, str(tmp_path)), lambda: hook.ifdown(bad, str(tmp_path))):
        with pytest.raises(InputError) as exc:
            action()
        assert str(exc.value).startswith(why)
    assert links.calls == []


# ---------------------------------------------------------------- ifdown


def test_ifdown_detaches_a_qemu_tap_and_leaves_the_network(host, links, tmp_path):
    applied(host, tmp_path, NAT)
    links.add_tap("tap7")
    hook.ifup("tap7", None, str(tmp_path))
    before = {k: v for k, v in host.state()["links"].items() if k != "tap7"}
    assert hook.ifdown("tap7", str(tmp_path)) == "tap7: detached"
    assert (host.links_["tap7"]["master"], host.links_["tap7"]["up"]) == (None, False)
    assert {k: v for k, v in host.state()["links"].items() if k != "tap7"} == before
    assert host.dnsmasqs and ("inet", "kvmnet_nat") in host.nft_tables


def test_ifdown_leaves_a_topologys_own_tap_in_place(host, links, tmp_path):
    applied(host, tmp_path, NAT)
    before = host.state()
    assert hook.ifdown("kn-nat-web-0", str(tmp_path)) == "kn-nat-web-0: belongs to an applied topology; left in place"
    assert host.state() == before and links.calls == []


def test_ifdown_of_a_tap_already_gone(host, links, tmp_path):
    applied(host, tmp_path, NAT)
    assert hook.ifdown("tap7", str(tmp_path)) == "tap7: already gone"
    assert links.calls == []


def test_ifdown_of_a_tap_qemu_closed_meanwhile(host, links, tmp_path):
    applied(host, tmp_path, NAT)
    links.add_tap("tap7")
    links.closes("tap7")
    assert hook.ifdown("tap7", str(tmp_path)) == "tap7: gone (No such device)"
    assert "tap7" not in host.links_


def test_ifdown_reports_a_failure_on_a_tap_that_is_still_there(host, links, tmp_path):
    links.add_tap("tap7")
    links.refuse(errno.EPERM)
    with pytest.raises(OSError) as exc:
        hook.ifdown("tap7", str(tmp_path))
    assert exc.value.errno == errno.EPERM
    assert "tap7" in host.links_


# ---------------------------------------------------------------- kvmnet-ifup / kvmnet-ifdown


def entry(monkeypatch, capsys, main, *argv) -> tuple[int, str]:
    name = {hook_main.ifup_main: "kvmnet-ifup", hook_main.ifdown_main: "kvmnet-ifdown"}[main]
    monkeypatch.setattr(sys, "argv", [f"/usr/local/bin/{name}", *argv])
    with pytest.raises(SystemExit) as exc:
        main()
    out = capsys.readouterr()
    assert out.out == ""
    return exc.value.code, out.err


@pytest.mark.parametrize("argv", [(), ("tap7", "tap8"), ("--network", "lab")])
def test_entry_points_print_usage_on_bad_arguments(argv, monkeypatch, capsys, links):
    assert entry(monkeypatch, capsys, hook_main.ifup_main, *argv) == (
        2, "usage: kvmnet-ifup [--network NET] [--state-dir DIR] TAP\n")
    assert entry(monkeypatch, capsys, hook_main.ifdown_main, *argv) == (
        2, "usage: kvmnet-ifdown [--network NET] [--state-dir DIR] TAP\n")


@pytest.mark.parametrize("form", [("--network", "lab"), ("-n", "lab"), ("--network=lab",)])
def test_ifup_entry_point_is_silent_unless_verbose(form, host, links, tmp_path, monkeypatch, capsys):
    applied(host, tmp_path, NAT, ROUTED)
    links.add_tap("tap7")
    assert entry(monkeypatch, capsys, hook_main.ifup_main, *form, "--state-dir", str(tmp_path), "tap7") == (0, "")
    assert host.links_["tap7"]["master"] == "kvmrt0"
    monkeypatch.setenv("KVMNET_VERBOSE", "1")
    assert entry(monkeypatch, capsys, hook_main.ifdown_main, "--state-dir", str(tmp_path), "tap7") == (
        0, "tap7: detached\n")
    assert host.links_["tap7"]["master"] is None


def test_entry_point_errors_exit_with_the_errors_code(host, links, tmp_path, monkeypatch, capsys):
    applied(host, tmp_path, NAT, ROUTED)
    assert entry(monkeypatch, capsys, hook_main.ifup_main, "--state-dir", str(tmp_path), "tap7") == (
        2, "kvmnet: tap7: several networks are applied (default, lab); say which with --network or KVMNET_NETWORK\n")
    assert entry(monkeypatch, capsys, hook_main.ifdown_main, "--state-dir", str(tmp_path), "bad/name") == (
        2, "kvmnet: 'bad/name' is not a valid interface name (letters, digits, '_', '-', '.' only)\n")


def test_entry_point_reports_a_host_refusal_as_exit_1(host, links, tmp_path, monkeypatch, capsys):
    applied(host, tmp_path, NAT)
    links.add_tap("tap7")
    links.refuse(errno.EPERM)
    assert entry(monkeypatch, capsys, hook_main.ifup_main, "--state-dir", str(tmp_path), "tap7") == (
        1, "kvmnet: tap7: Operation not permitted\n")
    assert host.links_["tap7"]["master"] is None


def test_a_hook_index_line_of_another_shape_is_no_fact():
    """The index is the hook's only reading of the record: a line it cannot take whole (an old
    path with a newline in it, a damaged file) is skipped, never a traceback or a bridge named
    by half a line."""
    applied = hook._Applied("t", "file /a/b.toml\nfile /evil.toml\nnetwork x\nnetwork y br0 extra\n"
                                 "network z bad;name\nnetwork lab kvmrt0\ntap tap;1 lab\ntap tap7 lab\n")
    assert (applied.file, applied.networks, applied.taps) == ("/a/b.toml", {"lab": {"bridge": "kvmrt0"}}, {"tap7": "lab"})
    odd = hook._Applied("t", "file /a/b\u2028network evil br-lan\u2028x.toml\nnetwork lab kvmrt0\n")
    assert odd.networks == {"lab": {"bridge": "kvmrt0"}}  # (a line break only str.splitlines() knows)
