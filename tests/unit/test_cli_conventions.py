"""The CLI's conventions across verbs: --quiet, --json's "version", one exit-code table, an example
in every --help, shell completion (a real bash running click's script), man pages (rendered by
groff), and the graph verb, all against the in-memory host."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from kvmnet import cli, cli_complete, cli_extra, config, engine, exitcodes

ROOT = Path(__file__).resolve().parents[2]
NAT, ROUTED, USER = (ROOT / "topologies" / f"{n}.toml" for n in ("nat", "routed", "user"))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in ("KVMNET_STATE_DIR", "KVMNET_NETWORK", "KVMNET_TOPOLOGY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def state(tmp_path):
    return tmp_path / "state"


@pytest.fixture
def kvmnet(state):
    def invoke(*args, env=None):
        return CliRunner().invoke(cli.main, ["--state-dir", str(state), *map(str, args)], prog_name="kvmnet", env=env)
    return invoke


def applied(host, state, *paths):
    for path in paths:
        engine.apply(config.load(str(path)), str(state), host=host)
    return host.state()


# ---------------------------------------------------------------- --quiet


def test_validate_quiet(kvmnet, tmp_path):
    assert (lambda r: (r.exit_code, r.output))(kvmnet("validate", "--quiet", NAT)) == (0, "")
    bad = tmp_path / "bad.toml"
    bad.write_text('[networks.default]\nmode = "nat"\nsubnet = "192.168.122.0/24"\n')
    res = kvmnet("validate", "-q", bad)
    assert (res.exit_code, res.stdout, res.stderr) == (2, "", f"{bad}:1: networks.default.bridge: is required\n")


def test_check_quiet_says_it_by_exit_code_only(kvmnet, host, state):
    applied(host, state, NAT)
    assert (lambda r: (r.exit_code, r.output))(kvmnet("check", "--quiet", NAT)) == (0, "")
    host.dnsmasqs.clear()
    assert (lambda r: (r.exit_code, r.output))(kvmnet("check", "--quiet", NAT)) == (1, "")


def test_status_quiet_exit_codes(kvmnet, host, state):
    assert (lambda r: (r.exit_code, r.output))(kvmnet("status", "--quiet")) == (1, "")  # nothing applied
    assert kvmnet("status", "--quiet", NAT).exit_code == 1
    applied(host, state, NAT)
    assert (lambda r: (r.exit_code, r.output))(kvmnet("status", "--quiet")) == (0, "")
    assert (lambda r: (r.exit_code, r.output))(kvmnet("status", "--quiet", NAT)) == (0, "")
    assert kvmnet("status", "--quiet", ROUTED).exit_code == 1  # another topology: not applied
    host.dnsmasqs.clear()
    assert (lambda r: (r.exit_code, r.output))(kvmnet("status", "--quiet", NAT)) == (1, "")


def test_status_of_a_missing_file_is_bad_input_even_with_nothing_applied(kvmnet, tmp_path):
    res = kvmnet("status", tmp_path / "nope.toml")
    assert (res.exit_code, res.stdout, res.stderr) == (2, "", f"{tmp_path / 'nope.toml'}: No such file or directory\n")


def test_apply_quiet_applies_and_prints_nothing(kvmnet, host, state, monkeypatch):
    monkeypatch.setattr(cli.cli_common, "is_root", lambda: True)
    before = host.state()
    res = kvmnet("apply", "--quiet", NAT)
    assert (res.exit_code, res.output) == (0, "")
    assert host.state() != before and "virbr0" in host.links_
    assert kvmnet("check", "-q", NAT).exit_code == 0


# ---------------------------------------------------------------- --json


def test_every_json_document_carries_version_1_and_its_keys(kvmnet, host, state):
    applied(host, state, NAT)
    expected = {("plan", NAT): {"topology", "firewall", "steps"}, ("check", NAT): {"topology", "in_sync", "drift"},
                ("status", NAT): {"state_dir", "topologies"}, ("leases",): {"leases"},
                ("qemu-args", NAT, "web"): {"guest", "nics"}, ("vagrant", NAT): {"topology", "guests"}}
    for args, keys in expected.items():
        res = kvmnet(args[0], "--json", *args[1:])
        assert res.exit_code == 0, (args, res.output)
        doc = json.loads(res.stdout)
        assert list(doc)[0] == "version" and doc["version"] == 1, args
        assert set(doc) == keys | {"version"}, args


# ---------------------------------------------------------------- exit codes, --help


def test_every_verb_has_an_example_and_the_exit_code_table_in_its_help(kvmnet):
    top = {name for name in cli_extra.EXAMPLES if " " not in name}  # "GROUP VERB": a group's own verb
    assert top == set(cli.main.every_command()), "every verb needs an example in cli_extra.EXAMPLES"
    table = ["Exit codes:"] + [f"  {code}  {meaning}" for code, meaning in exitcodes.TABLE]
    for name in list(cli.main.every_command()) + sorted(set(cli_extra.EXAMPLES) - top):
        res = kvmnet(*name.split(), "--help")
        assert res.exit_code == 0, name
        lines = [line.strip() for line in res.stdout.splitlines()]
        assert "Example:" in lines and cli_extra.EXAMPLES[name] in lines, name
        assert [line.strip() for line in table] == lines[lines.index("Exit codes:"):][:len(table)], name
    assert "Exit codes:" in kvmnet("--help").stdout


@pytest.mark.parametrize("verb, extra", [("validate", ()), ("plan", ()), ("check", ()), ("status", ()),
                                         ("graph", ()), ("vagrant", ()), ("qemu-args", ("web",))])
def test_bad_input_is_exit_2_for_every_verb(verb, extra, kvmnet, host, tmp_path):
    missing = tmp_path / "nope.toml"
    res = kvmnet(verb, missing, *extra)
    assert (res.exit_code, res.stdout, res.stderr) == (exitcodes.BAD_INPUT, "", f"{missing}: No such file or directory\n")
    assert kvmnet(verb, "--no-such-option", NAT, *extra).exit_code == exitcodes.BAD_INPUT  # click's usage errors


# ---------------------------------------------------------------- graph


def test_graph_formats_and_output_file(kvmnet, tmp_path):
    res = kvmnet("graph", NAT)
    assert res.exit_code == 0 and res.stdout == (ROOT / "tests/data/graph/nat.txt").read_text()
    out = tmp_path / "nat.dot"
    res = kvmnet("graph", "--format", "dot", "-o", out, NAT)
    assert (res.exit_code, res.output) == (0, "")
    assert out.read_text() == (ROOT / "tests/data/graph/nat.dot").read_text()
    assert kvmnet("graph", "--format", "mermaid", NAT).stdout.startswith("graph LR\n")
    assert kvmnet("graph", "--format", "png", NAT).exit_code == 2


def test_graph_live_on_the_host(kvmnet, host, state):
    applied(host, state, NAT)
    host.links_["kn-nat-web-0"]["up"] = False
    lines = kvmnet("graph", "--live", NAT).stdout.splitlines()
    assert lines[1] == "└── network default [applied]"
    assert lines[-2:] == ["    ├── guest web nic0 52:54:00:12:34:56 192.168.122.10 tap kn-nat-web-0 [drifted]",
                          "    └── guest other nic0 52:54:00:d5:ee:a8 tap kn-nat-other-0 [applied]"]
    assert "[" not in kvmnet("graph", NAT).stdout  # no marks without --live


# ---------------------------------------------------------------- completion


def complete(kvmnet, words: str, cword: int) -> list[str]:
    res = kvmnet(env={"_KVMNET_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(cword)})
    return [line for line in res.stdout.splitlines() if line]


def test_completion_of_verbs_options_files_guests_and_networks(kvmnet, host, state, monkeypatch, tmp_path):
    # (the runner puts --state-dir DIR first: word 3 is the verb)
    assert complete(kvmnet, f"kvmnet --state-dir {state} gr", 3) == ["plain,graph"]
    assert complete(kvmnet, f"kvmnet --state-dir {state} graph --for", 4) == ["plain,--format"]
    assert complete(kvmnet, f"kvmnet --state-dir {state} graph --format ", 5) == ["plain,dot", "plain,mermaid", "plain,text"]
    assert complete(kvmnet, f"kvmnet --state-dir {state} qemu-args {NAT} ", 5) == ["plain,web", "plain,other"]
    assert complete(kvmnet, f"kvmnet --state-dir {state} run {NAT} w", 5) == ["plain,web"]
    assert complete(kvmnet, f"kvmnet --state-dir {state} qemu-args /nope.toml ", 5) == []
    monkeypatch.chdir(ROOT)
    assert complete(kvmnet, f"kvmnet --state-dir {state} plan topologies/n", 4) == ["plain,topologies/nat.toml"]
    assert complete(kvmnet, f"kvmnet --state-dir {state} plan top", 4) == ["dir,top"]
    applied(host, state, NAT, ROUTED)
    assert complete(kvmnet, f"kvmnet --state-dir {state} leases ", 4) == ["plain,default", "plain,lab"]


@pytest.mark.parametrize("shell", cli_extra.SHELLS)
def test_completion_scripts(shell, kvmnet):
    res = kvmnet("completion", shell)
    assert res.exit_code == 0 and "_KVMNET_COMPLETE" in res.stdout
    assert f"{shell}_complete" in res.stdout


def test_bash_completes_guests_through_the_generated_script(tmp_path):
    """A real bash sources `kvmnet completion bash` and completes `kvmnet qemu-args nat.toml `."""
    if not shutil.which("bash"):
        pytest.skip("no bash")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "kvmnet"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m kvmnet.cli "$@"\n')
    wrapper.chmod(0o755)
    script = ('source <(kvmnet completion bash)\n'
              f'COMP_WORDS=(kvmnet qemu-args {NAT} ""); COMP_CWORD=3\n'
              '_kvmnet_completion kvmnet\nprintf "%s\\n" "${COMPREPLY[@]}"\n')
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    proc = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (0, "web\nother\n"), proc.stderr


# ---------------------------------------------------------------- man pages


def test_man_writes_a_page_per_verb_that_groff_renders(kvmnet, tmp_path):
    res = kvmnet("man", tmp_path / "man1")
    pages = sorted(p.name for p in (tmp_path / "man1").iterdir())
    groups = {name: cmd for name, cmd in cli.main.every_command().items() if isinstance(cmd, click.Group)}
    expected = ["kvmnet.1"] + [f"kvmnet-{name}.1" for name in cli.main.every_command()]
    expected += [f"kvmnet-{name}-{sub}.1" for name, group in groups.items() for sub in group.commands]
    assert pages == sorted(expected)
    assert (res.exit_code, res.stdout) == (0, f"wrote {len(pages)} man page(s) to {tmp_path / 'man1'}\n")
    graph_page = (tmp_path / "man1" / "kvmnet-graph.1").read_text()
    for macro in (".TH KVMNET-GRAPH 1", ".SH NAME", ".SH SYNOPSIS", ".SH DESCRIPTION", ".SH OPTIONS", ".SH EXAMPLE",
                  ".SH EXIT STATUS", ".SH SEE ALSO"):
        assert macro in graph_page
    if not shutil.which("groff"):
        pytest.skip("groff not installed: the roff was checked for its sections only")
    for page in pages:  # -ww: every warning; -z: no output, just the parse
        proc = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(tmp_path / "man1" / page)],
                              capture_output=True, text=True, timeout=60)
        assert (proc.returncode, proc.stderr) == (0, ""), page
    text = subprocess.run(["groff", "-man", "-Tutf8", "-P-cbou", str(tmp_path / "man1" / "kvmnet-graph.1")],
                          capture_output=True, text=True, timeout=60).stdout
    words = " ".join(text.split())  # groff justifies: compare words
    assert "NAME kvmnet-graph - Draw FILE: networks" in words
    assert "--format [dot|mermaid|text]" in words and "--live Annotate" in words
    assert f"EXAMPLE {cli_extra.EXAMPLES['graph']}" in words
    assert "EXIT STATUS 0 ok" in words and "2 bad input or a conflict" in words


def test_man_pages_are_reproducible(kvmnet, tmp_path):
    kvmnet("man", tmp_path / "a")
    kvmnet("man", tmp_path / "b")
    for page in (tmp_path / "a").iterdir():
        assert page.read_text() == (tmp_path / "b" / page.name).read_text()


def test_roff_escapes_what_would_be_a_request():
    from kvmnet.cli_man import roff
    assert roff(".not a macro\n'nor this\na\\b-c") == "\\&.not a macro\n\\&'nor this\na\\eb\\-c"


def test_network_names_complete_from_the_file_typed():
    """For options such as `--network N` that name one of FILE's networks."""
    import click
    ctx = click.Context(cli.main.every_command()["graph"])
    ctx.params["file"] = str(ROOT / "vagrant" / "lab" / "lab.toml")
    assert [c.value for c in cli_complete.complete_network(ctx, None, "")] == ["front", "back"]
    assert [c.value for c in cli_complete.complete_network(ctx, None, "b")] == ["back"]
    ctx.params["file"] = "/nope.toml"
    assert cli_complete.complete_network(ctx, None, "") == []
