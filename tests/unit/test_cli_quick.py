"""kvmnet/cli_quick.py: `kvmnet apply [-q] FILE` without click does what the click verb does.
Each case runs both ways against its own fresh in-memory host and the same state dir: the
same stdout, stderr and exit code, the same host and record after. Lines it does not read
exactly go to click."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.fakehost import uplinked

from kvmnet import cli, cli_common, cli_quick
from kvmnet.engine import record as records
from kvmnet.host import system

ROOT = Path(__file__).resolve().parents[2]
NAT = str(ROOT / "topologies" / "nat.toml")


@pytest.mark.parametrize("args, taken", [
    (["apply", "t.toml"], ("t.toml", False)), (["apply", "-q", "t.toml"], ("t.toml", True)),
    (["apply", "t.toml", "--quiet"], ("t.toml", True)),
    (["apply"], None), (["plan", "t.toml"], None), (["apply", "--dry-run", "t.toml"], None),
    (["apply", "-q", "-q", "t.toml"], None), (["apply", "a.toml", "b.toml"], None), (["apply", "--help"], None),
    (["apply", "-"], None), (["apply", "--", "t.toml"], None), (["apply", ""], None), (["apply", "."], None),
    (["--state-dir", "/tmp", "apply", "t.toml"], None), (["apply", "--firewall", "nftables", "t.toml"], None)])
def test_only_the_plain_apply_line_is_taken(args, taken, monkeypatch):
    monkeypatch.delenv("KVMNET_HOST", raising=False)
    assert cli_quick.command(args) == taken


def test_an_unreadable_file_goes_to_click_for_its_words(monkeypatch, tmp_path):
    topo = tmp_path / "t.toml"
    topo.write_text("")
    monkeypatch.delenv("KVMNET_HOST", raising=False)
    assert cli_quick.command(["apply", str(topo)]) == (str(topo), False)
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # (root reads a mode-000 file)
    assert cli_quick.command(["apply", str(topo)]) is None


def test_echo_writes_what_click_echo_writes(capsys, monkeypatch):
    import io
    import sys

    import click

    for text in ("plain", "\033[31mred\033[0m name", "caf\u00e9"):
        for err in (False, True):
            cli_common.echo(text, err=err)
            ours = capsys.readouterr()
            click.echo(text, err=err)
            assert capsys.readouterr() == ours
    ascii_out = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    monkeypatch.setattr(sys, "stdout", ascii_out)
    cli_common.echo("caf\u00e9")
    assert ascii_out.buffer.getvalue() == "caf\u00e9\n".encode()


def test_a_host_name_from_the_environment_goes_to_click(monkeypatch):
    monkeypatch.setenv("KVMNET_HOST", "h1")
    assert cli_quick.command(["apply", "t.toml"]) is None


def _by_click(state, file, quiet):
    res = CliRunner().invoke(cli.main, ["--state-dir", str(state), "apply", *(["-q"] if quiet else []), file])
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.stdout, res.stderr


def _quick(state, file, quiet, monkeypatch, capsys):
    monkeypatch.setenv("KVMNET_STATE_DIR", str(state))
    try:
        code = cli_quick.run(file, quiet)
    except SystemExit as done:
        code = done.code
    out = capsys.readouterr()
    return code, out.out, out.err


def both_ways(tmp_path, monkeypatch, capsys, file, quiet=False, root=True, prepare=lambda host: None):
    """[(exit code, stdout, stderr, host state, record), ...] by click and by cli_quick.run."""
    monkeypatch.setattr(cli_common, "is_root", lambda: root)
    monkeypatch.delenv("KVMNET_HOST", raising=False)
    outcomes = []
    for way in ("click", "quick"):
        state = tmp_path / "state"  # the same path both times: it is in the steps' words
        fake = uplinked()
        monkeypatch.setattr(system, "default", lambda: fake)
        prepare(fake)
        if way == "click":
            said = _by_click(state, file, quiet)
        else:
            said = _quick(state, file, quiet, monkeypatch, capsys)
        record = records.load(str(state), "nat").to_json() if os.path.isdir(state) else None
        outcomes.append((*said, fake.state(), record))
        shutil.rmtree(state, ignore_errors=True)
    return outcomes


@pytest.mark.parametrize("quiet", [False, True])
def test_an_apply_prints_exits_and_changes_what_the_click_verb_does(tmp_path, monkeypatch, capsys, quiet):
    by_click, quick = both_ways(tmp_path, monkeypatch, capsys, NAT, quiet)
    assert by_click == quick
    assert by_click[0] == 0 and (by_click[1] == "" if quiet else by_click[1].startswith("nat: applied 9 step(s)"))
    assert by_click[4]["entries"]  # it did apply


def test_a_failure_a_refusal_and_a_bad_file_alike(tmp_path, monkeypatch, capsys):
    def failing(host):
        host.fail(at=3)
    failed = both_ways(tmp_path, monkeypatch, capsys, NAT, prepare=failing)
    assert failed[0] == failed[1] and failed[0][0] == 1 and "rolled back:" in failed[0][2]
    as_user = both_ways(tmp_path, monkeypatch, capsys, NAT, root=False)
    assert as_user[0] == as_user[1] and as_user[0][0] == 1 and "needs root" in as_user[0][2]
    bad = tmp_path / "bad.toml"
    bad.write_text('[networks.n]\nmode = "nat"\nsubnet = "10.0.0.0/33"\n')
    refused = both_ways(tmp_path, monkeypatch, capsys, str(bad))
    assert refused[0] == refused[1] and refused[0][0] == 2 and f"{bad}:3: networks.n.subnet" in refused[0][2]
    missing = both_ways(tmp_path, monkeypatch, capsys, str(tmp_path / "missing.toml"))
    assert missing[0] == missing[1] and missing[0][0] == 2


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, EOFError])
def test_an_interrupt_is_clicks_aborted(tmp_path, monkeypatch, capsys, interruption):
    def interrupted(*args):
        raise interruption
    monkeypatch.setattr(cli_common, "apply_file", interrupted)
    assert _quick(tmp_path / "state", NAT, False, monkeypatch, capsys) == (1, "", "\nAborted!\n")
