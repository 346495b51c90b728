"""The host-service commands against an in-memory host: enabled topologies in a config dir
(enable, disable, list, apply-enabled, destroy-enabled), the systemd units, and `kvmnet try`
(begin, confirm, roll back, an abandoned try settled by the next command)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from kvmnet import cli, config, engine
from kvmnet.engine import enabled, record as records, trial
from kvmnet.host import units

ROOT = Path(__file__).resolve().parents[2]
NAT, ROUTED = (ROOT / "topologies" / f"{n}.toml" for n in ("nat", "routed"))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in ("KVMNET_STATE_DIR", "KVMNET_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(cli.cli_common, "is_root", lambda: True)
    # `try` runs in this process here and sets its signal handlers (its rollback ignores
    # SIGTERM): put them back, or every process started later inherits SIGTERM ignored (QEMU
    # in tests/integration/test_hooks_netns.py then never stops)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    yield
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


@pytest.fixture
def dirs(tmp_path):
    return tmp_path / "state", tmp_path / "etc-kvmnet"


@pytest.fixture
def kvmnet(dirs):
    state, conf = dirs

    def invoke(*args, input=None):
        return CliRunner().invoke(cli.main, ["--state-dir", str(state), *map(str, args)], input=input,
                                  env={"KVMNET_CONFIG_DIR": str(conf)})
    return invoke


def _copy(src: Path, dst: Path, replace: tuple[str, str] | None = None) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    text = src.read_text()
    dst.write_text(text.replace(*replace) if replace else text)
    return dst


# ---------------------------------------------------------------- enable / disable


def test_enable_installs_a_copy_named_after_the_topology(kvmnet, dirs, tmp_path):
    src = _copy(NAT, tmp_path / "work" / "nat.toml")
    res = kvmnet("enable", src)
    target = dirs[1] / "nat.toml"
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith(f"nat: enabled as {target} (a copy of {src}")
    assert target.read_text() == src.read_text()
    src.write_text("half-edited = [")  # the enabled copy does not follow the working file
    assert config.load(str(target)).name == "nat"
    res = kvmnet("enable", _copy(NAT, tmp_path / "again" / "nat.toml"))
    assert (res.exit_code, res.stdout) == (0, f"nat: already enabled as {target}\n")


def test_enabling_another_version_of_a_topology_is_refused_naming_both(kvmnet, dirs, tmp_path):
    assert kvmnet("enable", NAT).exit_code == 0
    other = _copy(NAT, tmp_path / "test" / "nat.toml", ('"virbr0"', '"virbr9"'))
    res = kvmnet("enable", other)
    target = dirs[1] / "nat.toml"
    assert res.exit_code == 2
    assert res.stderr == (f"{other}: topology 'nat' is already enabled from {target}, with other content; "
                          f"`kvmnet enable --replace {other}` replaces it (or give this file another `name`)\n")
    assert target.read_text() == NAT.read_text()
    assert kvmnet("enable", "--replace", other).exit_code == 0
    assert target.read_text() == other.read_text()


def test_a_file_that_does_not_load_is_not_enabled(kvmnet, dirs, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[networks.x]\nmode = 'warp'\n")
    res = kvmnet("enable", bad)
    assert res.exit_code == 2 and str(bad) in res.stderr
    assert not dirs[1].exists() or not list(dirs[1].iterdir())


def test_disable_removes_the_file_and_with_now_destroys(kvmnet, dirs, host):
    before = host.state()
    assert kvmnet("enable", NAT).exit_code == 0
    assert kvmnet("apply-enabled").exit_code == 0
    res = kvmnet("disable", "nat")
    assert (res.exit_code, res.stdout) == (0, f"nat: disabled (removed {dirs[1] / 'nat.toml'})\n"
                                              "nat: still applied until `kvmnet destroy` (or `kvmnet disable --now`)\n")
    assert kvmnet("disable", "nat").exit_code == 2
    assert kvmnet("enable", NAT).exit_code == 0
    res = kvmnet("disable", "--now", "nat")
    assert res.exit_code == 0 and "nat: destroyed (" in res.stdout, res.output
    assert host.state() == before


# ---------------------------------------------------------------- apply-enabled, list, destroy-enabled


def test_apply_enabled_applies_each_and_one_failure_stops_none(kvmnet, dirs, host):
    state, conf = dirs
    for src in (NAT, ROUTED):
        assert kvmnet("enable", src).exit_code == 0
    _copy(NAT, conf / "broken.toml", ('mode = "nat"', 'mode = "warp"'))
    res = kvmnet("apply-enabled")
    assert res.exit_code == 1
    assert res.stderr.splitlines()[-1] == "kvmnet: 1 of 3 enabled topologies failed: broken"
    assert f"broken: FAILED ({conf / 'broken.toml'}): " in res.stderr
    assert {r.topology: r.file for r in records.all_records(str(state))} == {
        "nat": str(conf / "nat.toml"), "routed": str(conf / "routed.toml")}
    assert "virbr0" in host.links_ and "kvmrt0" in host.links_
    res = kvmnet("list", "--json")
    rows = {r["topology"]: r for r in json.loads(res.stdout)["topologies"]}
    assert rows["nat"] == {"topology": "nat", "enabled": str(conf / "nat.toml"), "applied": str(conf / "nat.toml"),
                           "state": "in sync"}
    assert rows["broken"]["state"] == "not applied"
    host.run(engine_step("link.del", name="kvmrt0"))
    rows = {r["topology"]: r for r in json.loads(kvmnet("list", "--json").stdout)["topologies"]}
    assert rows["routed"]["state"].startswith("drifted (")
    (conf / "broken.toml").unlink()
    res = kvmnet("destroy-enabled")
    assert res.exit_code == 0, res.output
    assert records.all_records(str(state)) == [] and "virbr0" not in host.links_


def test_a_host_failure_in_one_enabled_topology_leaves_the_others_applied(kvmnet, dirs, host):
    for src in (NAT, ROUTED):
        assert kvmnet("enable", src).exit_code == 0
    host.fail(at=1)  # nat's second step (nat.toml sorts first)
    res = kvmnet("apply-enabled")
    assert res.exit_code == 1
    assert res.stderr.startswith(f"nat: FAILED ({dirs[1] / 'nat.toml'}): apply failed at step 2 ")
    assert "  rolled back: " in res.stderr
    assert res.stderr.splitlines()[-1] == "kvmnet: 1 of 2 enabled topologies failed: nat"
    assert res.stdout.startswith(f"routed: applied ") and "virbr0" not in host.links_ and "kvmrt0" in host.links_


def engine_step(op, **args):
    from kvmnet.engine.steps import Step
    return Step(op, args)


def test_apply_enabled_takes_over_the_same_text_applied_from_elsewhere(kvmnet, dirs, host, tmp_path):
    """`apply ~/nat.toml`, then `enable ~/nat.toml`: boot's apply-enabled is not refused as
    "applied from another file"; another text applied from elsewhere still is."""
    src = _copy(NAT, tmp_path / "home" / "nat.toml")
    assert kvmnet("apply", src).exit_code == 0
    assert kvmnet("enable", src).exit_code == 0
    res = kvmnet("apply-enabled")
    assert (res.exit_code, res.stdout) == (0, f"nat: nothing to do ({dirs[1] / 'nat.toml'})\n")
    src.write_text(src.read_text().replace("8080", "8081"))
    assert kvmnet("apply", "--replace", src).exit_code == 0
    res = kvmnet("apply-enabled")
    assert res.exit_code == 1 and "is applied here from another file" in res.stderr


def test_list_shows_enabled_and_applied_side_by_side(kvmnet, dirs, host):
    assert kvmnet("enable", ROUTED).exit_code == 0
    assert kvmnet("apply", NAT).exit_code == 0
    lines = kvmnet("list").stdout.splitlines()
    assert lines[0].split() == ["TOPOLOGY", "ENABLED", "APPLIED", "FROM", "STATE"]
    assert lines[1].split() == ["nat", "-", str(NAT), "in", "sync"]
    assert lines[2].split() == ["routed", str(dirs[1] / "routed.toml"), "-", "not", "applied"]


# ---------------------------------------------------------------- units


def test_install_units_fills_in_the_command_and_config_dir(kvmnet, tmp_path):
    exe = tmp_path / "bin" / "kvmnet"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    res = kvmnet("install-units", "--dir", tmp_path / "units", "--exec", exe, "--config-dir", "/srv/topologies")
    unit = tmp_path / "units" / "kvmnet.service"
    assert res.exit_code == 0 and f"installed {unit}" in res.stdout, res.output
    text = unit.read_text()
    assert f"ExecStart={exe} apply-enabled --config-dir /srv/topologies\n" in text
    assert f"ExecStop={exe} destroy-enabled --config-dir /srv/topologies\n" in text
    assert "@" not in text and "RemainAfterExit=yes" in text and "Before=libvirtd.service" in text
    assert oct(unit.stat().st_mode & 0o777) == "0o644"
    assert sorted(units.templates()) == ["kvmnet-watch.service", "kvmnet.service"]
    watch = (tmp_path / "units" / "kvmnet-watch.service").read_text()
    assert f"ExecStart={exe} watch\n" in watch and "@" not in watch and "After=kvmnet.service" in watch


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_the_units_pass_systemd_analyze_verify(tmp_path):
    def complaints(paths):
        res = subprocess.run(["systemd-analyze", "verify", *paths], capture_output=True, text=True,
                             env=dict(os.environ, SYSTEMD_LOG_LEVEL="warning"))
        return res.returncode, [line for line in res.stderr.splitlines() if str(tmp_path) in line or "kvmnet" in line]
    paths = units.install(str(tmp_path / "good"), shutil.which("true"), "/etc/kvmnet")
    assert complaints(paths) == (0, [])
    broken = tmp_path / "bad" / "kvmnet.service"  # the check can fail: a setting systemd ignores
    broken.parent.mkdir()
    broken.write_text(Path(paths[0]).read_text().replace("KillMode=process", "KillMode=proces"))
    assert "Failed to parse kill mode" in " ".join(complaints([str(broken)])[1])


# ---------------------------------------------------------------- try (engine)


def _applied_v1(host, state: Path, tmp_path: Path) -> Path:
    v1 = _copy(NAT, tmp_path / "nat.toml")
    engine.apply(config.load(str(v1)), str(state), host=host)
    return v1


def test_a_rolled_back_try_restores_the_version_applied_before_even_when_edited_in_place(host, dirs, tmp_path):
    state = dirs[0]
    path = _applied_v1(host, state, tmp_path)
    before, before_rec = host.state(), records.load(str(state), "nat").to_json()
    path.write_text(path.read_text().replace("8080", "8081").replace("192.168.122.254", "192.168.122.200"))
    pending, result = trial.begin(config.load(str(path)), str(state), 60, host=host)
    assert result.actions and host.state() != before
    assert pending.previous["source"] == NAT.read_text()
    trial.roll_back(str(state), pending, host=host)
    assert _without_pids(host.state()) == _without_pids(before)  # dnsmasq restarted with its old config
    assert records.load(str(state), "nat").to_json() == before_rec
    assert trial.all_pending(str(state)) == []


def _without_pids(state: dict) -> dict:
    for instance in state["dnsmasq"].values():
        instance.pop("pid")
    return state


def test_a_rolled_back_try_of_a_new_topology_destroys_it(host, dirs):
    before = host.state()
    pending, _ = trial.begin(config.load(str(NAT)), str(dirs[0]), 60, host=host)
    assert "virbr0" in host.links_
    trial.roll_back(str(dirs[0]), pending, host=host)
    assert host.state() == before and records.all_records(str(dirs[0])) == []


def test_an_abandoned_try_is_settled_only_after_its_deadline_and_only_once_its_process_is_gone(host, dirs):
    state = str(dirs[0])
    before = host.state()
    pending, _ = trial.begin(config.load(str(NAT)), state, 60, host=host)
    assert trial.settle_expired(state, host=host, now=time.time() + 3600) == []  # its process (us) lives
    marker = json.loads(Path(trial.marker_path(state, "nat")).read_text())
    marker["started"] = "1"  # as if the trying process had been killed
    Path(trial.marker_path(state, "nat")).write_text(json.dumps(marker))
    assert trial.settle_expired(state, host=host) == []  # not before the deadline
    assert trial.next_deadline(state) == pending.deadline
    settled = trial.settle_expired(state, host=host, now=pending.deadline + 1)
    assert [p.topology for p, _ in settled] == ["nat"]
    assert host.state() == before and trial.all_pending(state) == []


def test_confirm_keeps_the_change_and_is_refused_once_the_deadline_passed(host, dirs):
    state = str(dirs[0])
    pending, _ = trial.begin(config.load(str(NAT)), state, 60, host=host)
    assert trial.confirm(state, "nat").confirmed
    trial.finish(state, pending)
    assert trial.all_pending(state) == [] and "virbr0" in host.links_
    with pytest.raises(Exception, match="no try of topology 'nat' is pending"):
        trial.confirm(state, "nat")
    marker = dict(vars(trial.begin(config.load(str(ROUTED)), state, 60, host=host)[0]), deadline=time.time() - 1)
    Path(trial.marker_path(state, "routed")).write_text(json.dumps(marker))
    with pytest.raises(Exception, match="too late: the try of .* expired"):
        trial.confirm(state, "routed")


def test_a_second_try_of_a_topology_waits_for_the_first(host, dirs):
    state = str(dirs[0])
    trial.begin(config.load(str(NAT)), state, 60, host=host)
    with pytest.raises(Exception, match="a try of topology 'nat' is already pending"):
        trial.begin(config.load(str(NAT)), state, 60, host=host)


def test_a_refused_try_leaves_no_marker(host, dirs):
    state = str(dirs[0])
    host.fail(at=2)
    with pytest.raises(Exception, match="apply failed"):
        trial.begin(config.load(str(NAT)), state, 60, host=host)
    assert trial.all_pending(state) == [] and records.all_records(state) == []


# ---------------------------------------------------------------- try (command)


def test_try_with_stdin_at_eof_times_out_and_rolls_back(kvmnet, host, dirs):
    before = host.state()
    started = time.monotonic()
    res = kvmnet("try", "--timeout", "1", NAT, input="")
    assert res.exit_code == 1, res.output
    assert time.monotonic() - started >= 1
    assert res.stderr.splitlines()[-1] == (f"kvmnet: {NAT} was not confirmed (timed out): rolled back: "
                                          "destroyed topology nat, which was not applied before (6 step(s))")
    assert host.state() == before and trial.all_pending(str(dirs[0])) == []


def test_the_next_command_finishes_an_abandoned_try(kvmnet, host, dirs, tmp_path):
    state = str(dirs[0])
    path = _applied_v1(host, dirs[0], tmp_path)
    before = host.state()
    path.write_text(path.read_text().replace("8080", "8081"))
    pending, _ = trial.begin(config.load(str(path)), state, 60, host=host)
    marker = dict(vars(pending), started="1", deadline=time.time() - 1)  # killed, and past its deadline
    Path(trial.marker_path(state, "nat")).write_text(json.dumps(marker))
    res = kvmnet("status")
    assert res.exit_code == 0
    assert "rolled back: re-applied the version applied before, from " in res.stderr
    assert host.state() == before and trial.all_pending(state) == []


def test_record_keeps_the_text_applied_and_follows_edits_that_change_nothing(host, dirs, tmp_path):
    state = str(dirs[0])
    path = _applied_v1(host, dirs[0], tmp_path)
    assert records.load(state, "nat").source == NAT.read_text()
    path.write_text("# a comment\n" + NAT.read_text())
    assert engine.apply(config.load(str(path)), state, host=host).actions == []
    assert records.load(state, "nat").source.startswith("# a comment\n")
    assert enabled.resolve(None) == "/etc/kvmnet"
