"""The closed schema of state records (engine/stepschema.py): every record kvmnet writes passes
it, and a record that names an unknown op, a missing or extra argument, a wrong type, or a path,
sysctl, firewall table or binary that is not this topology's own is refused as corrupt when it is
loaded, before any of it runs."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from helpers.fakehost import FakeHost

from kvmnet import config, engine, naming
from kvmnet.engine import record as records
from kvmnet.engine.stepschema import OPS, SchemaError, Where, check_step
from kvmnet.engine.record import CorruptRecord

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGIES = sorted((ROOT / "topologies").glob("*.toml")) + sorted((ROOT / "tests/data/topologies").glob("*.toml"))


def _host():
    # eth1: host h1's underlay address, for topologies/multihost.toml
    return FakeHost().with_nic("eth0", "52:54:00:00:00:01", ["192.0.2.10/24"], gateway="192.0.2.1").with_nic(
        "eth1", "52:54:00:00:00:02", ["10.200.0.1/24"])


def _applied_nat(root: Path) -> dict:
    engine.apply(config.load(str(ROOT / "topologies/nat.toml")), str(root), host=_host())
    return json.loads((root / "nat" / "state.json").read_text())


@pytest.mark.parametrize("backend", ["nftables", "iptables"])
@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.stem)
def test_every_record_kvmnet_writes_passes_the_schema(path, backend, tmp_path):
    topo = config.load(str(path))
    host = _host()
    if backend == "iptables" and any(n.spoof_protection for n in topo.networks):
        pytest.skip("spoof_protection needs nftables")
    engine.apply(topo, str(tmp_path), backend, host=host)
    rec = records.load(str(tmp_path), topo.name)  # raises if the schema refused it
    assert rec.entries or topo.networks and all(n.mode in ("user", "socket", "passt") for n in topo.networks)


def test_a_changed_topology_records_previous_rules_and_config_that_pass(tmp_path):
    """Undo steps that carry what was there before (firewall listing, dnsmasq's old config)."""
    host = _host()
    text = (ROOT / "topologies/nat.toml").read_text()
    (tmp_path / "nat.toml").write_text(text)
    engine.apply(config.load(str(tmp_path / "nat.toml")), str(tmp_path / "s"), host=host)
    (tmp_path / "nat.toml").write_text(text.replace("8080", "8081"))
    engine.apply(config.load(str(tmp_path / "nat.toml")), str(tmp_path / "s"), host=host)
    records.load(str(tmp_path / "s"), "nat")


def _entry(data: dict, op: str) -> dict:
    return next(u for _, u in data["entries"] if u and u["op"] == op)


def _corrupt(tmp_path, data) -> str:
    (tmp_path / "nat" / "state.json").write_text(json.dumps(data))
    with pytest.raises(CorruptRecord) as exc:
        records.load(str(tmp_path), "nat")
    return exc.value.why


def test_unknown_op(tmp_path):
    data = _applied_nat(tmp_path)
    data["entries"].append(["x", {"op": "shell.run", "args": {"command": "touch /tmp/owned"}}])
    assert _corrupt(tmp_path, data) == f"entries[{len(data['entries']) - 1}] (x): unknown step op 'shell.run'"


def test_missing_and_extra_arguments(tmp_path):
    data = _applied_nat(tmp_path)
    bad = copy.deepcopy(data)
    del _entry(bad, "link.del")["args"]["name"]
    assert _corrupt(tmp_path, bad).endswith("link.del: missing argument name")
    bad = copy.deepcopy(data)
    _entry(bad, "link.del")["args"]["exec"] = "/bin/sh"
    assert _corrupt(tmp_path, bad).endswith("link.del: unknown argument(s) exec")
    bad = copy.deepcopy(data)
    del _entry(bad, "link.del")["args"]
    assert _corrupt(tmp_path, bad).endswith("a step must be an object with exactly `op` and `args`")


def test_wrong_types(tmp_path):
    data = _applied_nat(tmp_path)
    for op, arg, value, why in [
        ("link.del", "name", 7, "must be str, not int"),
        ("link.del", "name", "eth0;reboot", "'eth0;reboot' is not a valid interface name"),
        ("addr.del", "cidr", "not-an-address", "'not-an-address' is not an address/prefix"),
        ("dnsmasq.stop", "purge", "yes", "must be bool, not str"),
    ]:
        bad = copy.deepcopy(data)
        _entry(bad, op)["args"][arg] = value
        assert why in _corrupt(tmp_path, bad), (op, arg)


def test_paths_outside_the_topologys_state_dir(tmp_path):
    data = _applied_nat(tmp_path)
    for arg, value in [("conf", "/etc/passwd"), ("leases", f"{tmp_path}/nat/../../x.leases"),
                       ("pid_file", f"{tmp_path}/other/dnsmasq-default.pid")]:
        bad = copy.deepcopy(data)
        _entry(bad, "dnsmasq.stop")["args"][arg] = value
        assert "(outside the topology's state dir)" in _corrupt(tmp_path, bad), arg
    bad = copy.deepcopy(data)
    _entry(bad, "sysctl.set")["args"]["path"] = "net/../../../etc/passwd"
    assert "is not a sysctl under /proc/sys/net" in _corrupt(tmp_path, bad)


def test_no_executable_or_foreign_firewall_in_a_record(tmp_path):
    data = _applied_nat(tmp_path)
    bad = copy.deepcopy(data)
    _entry(bad, "dnsmasq.stop")["args"]["exe"] = "/tmp/evil/dnsmasq"
    assert "is not dnsmasq in a system bin directory" in _corrupt(tmp_path, bad)
    bad = copy.deepcopy(data)
    stop = _entry(bad, "dnsmasq.stop")["args"]  # a name that leads out of the state dir, paths to match
    stop["network"] = "default.d/../../../etc"
    for key, path in naming.dnsmasq_paths(str(tmp_path / "nat"), stop["network"]).items():
        stop[{"pid": "pid_file"}.get(key, key)] = path
    assert "'default.d/../../../etc' is not a network name" in _corrupt(tmp_path, bad)
    bad = copy.deepcopy(data)
    _entry(bad, "firewall.delete")["args"]["table"] = "filter"
    assert "'filter' is not this topology's firewall (kvmnet_nat)" in _corrupt(tmp_path, bad)
    bad = copy.deepcopy(data)
    _entry(bad, "firewall.delete")["args"]["delete"] = "flush ruleset\n"
    assert "nft text touches more than table kvmnet_nat: 'flush ruleset'" in _corrupt(tmp_path, bad)
    # nft reads commands by braces, not indentation: an indented one, or one after a ';', is top level
    for text, shown in (("  flush ruleset\n", "'  flush ruleset'"),
                        ("table inet kvmnet_nat {}; flush ruleset\n", "'table inet kvmnet_nat {}; flush ruleset'"),
                        ("table inet kvmnet_nat {\n}\n\tflush ruleset\n", "'\\tflush ruleset'")):
        bad = copy.deepcopy(data)
        _entry(bad, "firewall.delete")["args"]["delete"] = text
        assert f"nft text touches more than table kvmnet_nat: {shown}" in _corrupt(tmp_path, bad), text


def test_dnsmasq_steps_with_or_without_exe_are_accepted(tmp_path):
    """Transitional: the binary is resolved at run time; older records still name it."""
    data = _applied_nat(tmp_path)
    stop = _entry(data, "dnsmasq.stop")
    where = Where("nat", str(tmp_path / "nat"))
    check_step(stop, where)
    check_step({"op": stop["op"], "args": {k: v for k, v in stop["args"].items() if k != "exe"}}, where)


@pytest.mark.parametrize("text, why", [
    ('{"version": 1, "topology": "nat", "entries": [["k"]]}', "entries[0] must be [key, undo step or null]"),
    ('{"version": 1, "topology": "nat", "entries": [["k", {"op": "nope", "args": {}}]]}',
     "entries[0] (k): unknown step op 'nope'"),
    ('{"version": 1, "topology": "nat", "entries": [["k", {"op": "link.del"}]]}',
     "entries[0] (k): a step must be an object with exactly `op` and `args`"),
    ('{"version": 1, "topology": "nat", "entries": [], "taps": ["x"]}', "taps must map names to network names"),
    ('{"version": 1, "topology": "nat", "entries": [], "run": "sh"}', "unknown field(s) run"),
    ('{"version": 1, "topology": "other", "entries": []}', "topology is 'other', not 'nat' (its directory)"),
    ("[" * 100000, "not JSON (maximum recursion depth exceeded"),
])
def test_wrongly_shaped_json_is_corrupt_not_a_traceback(text, why, tmp_path):
    (tmp_path / "nat").mkdir()
    (tmp_path / "nat" / "state.json").write_text(text)
    with pytest.raises(CorruptRecord) as exc:
        engine.destroy("nat", str(tmp_path), host=FakeHost())
    assert exc.value.why.startswith(why)
    assert str(exc.value).startswith(f"{tmp_path}/nat/state.json: record is corrupt: {why}")
    assert str(exc.value).endswith("; `kvmnet destroy --force FILE` removes what kvmnet made from its names")


def test_every_op_steps_py_defines_has_a_schema():
    """All but the hand-over, a plan's step that only moves an undo between records: no record
    may hold it as an undo."""
    from kvmnet.engine import handover, steps
    assert set(OPS) | {handover.OP} == set(steps._COMMANDS) == set(steps._DESCRIBE)
    undo = {"op": handover.OP, "args": {"key": "sysctl:net/ipv4/ip_forward", "heir": "x", "undo": {}}}
    with pytest.raises(SchemaError, match="unknown step op 'record.hand_over'"):
        check_step(undo, Where("nat", "/var/lib/kvmnet/nat"))


def test_the_firewall_command_text_is_display_only(tmp_path):
    """`command` is what `kvmnet plan` prints; the host runs `ruleset`/`delete`, never it."""
    from kvmnet.engine.steps import Step
    host = _host()
    step = Step("firewall.delete", {"backend": "nftables", "table": "kvmnet_nat", "summary": "x",
                                    "delete": "", "command": "touch /tmp/ktest/owned-by-command"})
    host.run(step)
    assert not Path("/tmp/ktest/owned-by-command").exists()
    with pytest.raises(SchemaError):
        check_step({"op": "firewall.delete", "args": dict(step.args, command=["sh", "-c", "x"])},
                   Where("nat", str(tmp_path)))


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.stem)
def test_a_dnsmasq_conf_in_a_record_holds_only_options_kvmnet_writes(path, tmp_path):
    """A dnsmasq.start undo restarts dnsmasq with the conf it ran with: every conf kvmnet renders
    passes, and one with an option kvmnet never writes (dhcp-script runs as root) does not."""
    topo = config.load(str(path))
    starts = [a.do.to_json() for a in engine.compute(topo, str(tmp_path), host=_host())[2]
              if a.do.op == "dnsmasq.start"]
    where = Where(topo.name, str(tmp_path / topo.name))
    for step in starts:
        check_step(step, where)
        for extra in ("dhcp-script=/tmp/evil", "conf-dir=/tmp/evil", "server=10.6.6.6"):
            bad = copy.deepcopy(step)
            bad["args"]["conf_text"] += extra + "\n"
            with pytest.raises(SchemaError, match=f"dnsmasq option '{extra.split('=')[0]}' is not one kvmnet writes"):
                check_step(bad, where)


def test_a_records_host_forward_accepts_are_only_kvmnets_for_its_bridge():
    """fwaccept specs go into the host's own FORWARD chain: only the accepts kvmnet renders."""
    where = Where("nat", "/run/kvmnet/nat")
    comment = ["-m", "comment", "--comment", "kvmnet nat"]
    ours = [["-i", "virbr0", *comment, "-j", "ACCEPT"], ["-o", "virbr0", *comment, "-j", "ACCEPT"],
            ["-i", "virbr0", "-o", "virbr0", *comment, "-j", "ACCEPT"]]
    for op in ("fwaccept.add", "fwaccept.del"):
        check_step({"op": op, "args": {"bridge": "virbr0", "topology": "nat", "specs": ours}}, where)
    for specs, why in (([["-j", "ACCEPT"]], "is not one of kvmnet's accepts for virbr0"),
                       ([["-i", "eth0", *comment, "-j", "ACCEPT"]], "is not one of kvmnet's accepts for virbr0"),
                       ([["-i", "virbr0", "-m", "comment", "--comment", "kvmnet other", "-j", "ACCEPT"]],
                        "is not one of kvmnet's accepts"),
                       ([["-i", "virbr0", *comment, "-j", "DROP"]], "is not one of kvmnet's accepts"),
                       ("-j ACCEPT", "must be a list of kvmnet's accept rules")):
        with pytest.raises(SchemaError, match=why):
            check_step({"op": "fwaccept.add", "args": {"bridge": "virbr0", "topology": "nat", "specs": specs}}, where)
    with pytest.raises(SchemaError, match="is not this record's topology"):
        check_step({"op": "fwaccept.del", "args": {"bridge": "virbr0", "topology": "other", "specs": []}}, where)


def test_a_group_deletion_names_only_this_topologys_link_groups():
    """Deleting by link group takes every link in the group: group 0 holds every link a host has."""
    where = Where("nat", "/run/kvmnet/nat")
    for group in (naming.link_group("nat"), naming.bridge_group("nat"), naming.removal_group("nat")):
        check_step({"op": "links.del_group", "args": {"group": group, "names": ["kn-nat-web-0"]}}, where)
    for group in (0, naming.link_group("other")):
        with pytest.raises(SchemaError, match="is not one of this topology's link groups"):
            check_step({"op": "links.del_group", "args": {"group": group, "names": ["eth0"]}}, where)
