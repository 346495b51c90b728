"""What a cold `kvmnet apply` imports: start-up is most of its wall time (a NAT network's apply
is mostly interpreter start and imports), so the verbs a user rarely runs, netaddr (MACs in the
spelling kvmnet writes need none of it) and the modules of features a topology does not use stay
out of it. Each test runs a fresh interpreter and reads its sys.modules."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import netaddr
import pytest

from kvmnet.config import guests

ROOT = Path(__file__).resolve().parents[2]

# `kvmnet apply FILE` through cli.main, on the in-memory host; prints the modules loaded
APPLY = """
import sys
sys.path.insert(0, "tests")
from helpers.fakehost import uplinked
from kvmnet import cli, cli_common
from kvmnet.host import system
fake = uplinked()
system.default = lambda: fake
cli_common.is_root = lambda: True
try:
    cli.main(["--state-dir", sys.argv[1], *sys.argv[2:]], prog_name="kvmnet")
except SystemExit as exc:
    print("exit", exc.code)
print(" ".join(sorted(sys.modules)))
"""

# not for applying a NAT network: other verbs' modules, MAC spellings kvmnet does not write,
# other features' host code and the status / interop renderers
NOT_ON_THE_APPLY_PATH = {
    "netaddr", "click.shell_completion", "dataclasses",
    "kvmnet.cli_extra", "kvmnet.cli_interop", "kvmnet.cli_service", "kvmnet.cli_watch", "kvmnet.cli_passt",
    "kvmnet.cli_capture", "kvmnet.cli_man",
    "kvmnet.engine.overlay_status", "kvmnet.engine.live", "kvmnet.engine.qemu_command", "kvmnet.engine.passt",
    "kvmnet.engine.watch",
    "kvmnet.host.capture", "kvmnet.host.tc", "kvmnet.host.frr", "kvmnet.host.vxlan", "kvmnet.host.passt",
    "kvmnet.host.vde", "kvmnet.host.macvtap", "kvmnet.host.qemu", "kvmnet.host.leases", "kvmnet.host.events",
    "kvmnet.host.units", "kvmnet.host.iptables",
    "kvmnet.render.graph", "kvmnet.render.vagrant", "kvmnet.render.libvirt_xml", "kvmnet.render.qemu",
    "kvmnet.render.iptables",
    "kvmnet.config.libvirt_xml", "kvmnet.config.tomlwrite",
}


def _run(tmp_path, *argv: str) -> tuple[str, set[str]]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-c", APPLY, str(tmp_path / "state"), *argv], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    *_, last = res.stdout.splitlines()
    return res.stdout, set(last.split())


def test_a_cold_apply_imports_nothing_it_does_not_use(tmp_path):
    out, modules = _run(tmp_path, "apply", "-q", "topologies/nat.toml")
    assert out.splitlines()[0] == "exit 0"  # -q: nothing printed, applied
    assert "kvmnet.engine.transaction" in modules and "kvmnet.config.guests" in modules  # it did apply
    assert sorted(modules & NOT_ON_THE_APPLY_PATH) == []


# the console script (kvmnet/entry.py) on the same host: `apply [-q] FILE` runs without click
# (cli_quick.py); the modules are printed by an exit handler (entry.py ends with os._exit)
ENTRY = """
import atexit, sys
sys.path.insert(0, "tests")
from helpers.fakehost import uplinked
from kvmnet import cli_common, entry
from kvmnet.host import system
fake = uplinked()
system.default = lambda: fake
cli_common.is_root = lambda: True
atexit.register(lambda: print(" ".join(sorted(sys.modules))))
sys.argv = ["kvmnet", *sys.argv[1:]]
entry.main()
"""


@pytest.mark.parametrize("argv, clicked", [(("apply", "-q", "topologies/nat.toml"), False),
                                           (("apply", "--firewall", "nftables", "-q", "topologies/nat.toml"), True)])
def test_the_console_scripts_plain_apply_runs_without_click(tmp_path, argv, clicked):
    env = dict(os.environ, PYTHONPATH=str(ROOT), KVMNET_STATE_DIR=str(tmp_path / "state"), KVMNET_NETLINK_WORKER="0")
    env.pop("KVMNET_HOST", None)
    res = subprocess.run([sys.executable, "-c", ENTRY, *argv], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    modules = set(res.stdout.splitlines()[-1].split())
    assert "kvmnet.engine.transaction" in modules and (tmp_path / "state" / "nat").is_dir()  # it did apply
    assert ("click" in modules) is clicked and ("kvmnet.cli" in modules) is clicked
    assert ("typing" in modules) is clicked  # click's; kvmnet's own apply needs none of it
    assert sorted(modules & NOT_ON_THE_APPLY_PATH) == []


def test_a_verb_that_needs_them_still_loads_them(tmp_path):
    """The check above can fail: `kvmnet graph` loads its module when run, and `--help` lists
    (so loads) every verb."""
    _, modules = _run(tmp_path, "graph", "topologies/nat.toml")
    assert {"kvmnet.cli_extra", "kvmnet.render.graph"} <= modules
    out, modules = _run(tmp_path, "--help")
    assert {"kvmnet.cli_service", "kvmnet.cli_watch", "kvmnet.cli_passt", "kvmnet.cli_interop"} <= modules
    for verb in ("try", "watch", "passt", "import", "capture", "graph", "man"):
        assert f"  {verb} " in out, verb


def test_other_mac_spellings_still_go_through_netaddr(tmp_path):
    (tmp_path / "t.toml").write_text('[networks.n]\nmode = "isolated"\nbridge = "br0"\n'
                                     '[guests.a]\n[[guests.a.nics]]\nnetwork = "n"\nmac = "52-54-00-AB-CD-EF"\n')
    out, modules = _run(tmp_path, "validate", str(tmp_path / "t.toml"))
    assert "netaddr" in modules and "networks: n (isolated); guests: 1" in out


@pytest.mark.parametrize("raw", [bytes.fromhex("525400abcdef"), bytes(6), b"\xff" * 6, bytes.fromhex("0123456789ab"),
                                 bytes.fromhex("fe54009a0b0c"), bytes.fromhex("a0b1c2d3e4f5")])
@pytest.mark.parametrize("case", [str.lower, str.upper, str.title])
def test_the_colon_spelling_reads_as_netaddr_reads_it(raw, case):
    text = case(":".join(f"{b:02x}" for b in raw))
    assert guests._eui48(text) == str(netaddr.EUI(text, version=48, dialect=netaddr.mac_unix_expanded))


def test_version_is_the_packages_without_reading_installed_metadata(tmp_path):
    import tomllib
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    out, modules = _run(tmp_path, "--version")
    assert out.splitlines()[0] == f"kvmnet, version {version}"
    assert "importlib.metadata" not in modules


def test_a_mistyped_verb_is_matched_against_every_verb():
    """Not only the verbs loaded so far (a fresh process has loaded none of LAZY's)."""
    res = subprocess.run([sys.executable, "-m", "kvmnet.cli", "tyr"], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "No such command 'tyr'. Did you mean 'try'?" in res.stderr


# the cyclic GC: importing kvmnet.cli leaves it on (what was imported, frozen: no collection looks
# at it again); a verb leaves it on; at exit nothing is left for a last collection to look at
GC = """
import gc, sys
from kvmnet import cli
print("after import", gc.isenabled(), gc.get_freeze_count() > 10000)
try:
    cli.main(["--state-dir", sys.argv[1], "validate", "-q", "topologies/nat.toml"], prog_name="kvmnet")
except SystemExit as exc:
    print("validate exit", exc.code, "collector", gc.isenabled())
class Cycle:
    def __del__(self):
        print("a last collection ran")
c = Cycle(); c.me = c; del c  # garbage only a collection finds
"""


def test_start_up_and_exit_leave_the_cyclic_gc_nothing_to_look_at(tmp_path):
    res = subprocess.run([sys.executable, "-c", GC, str(tmp_path / "state")], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.stdout.splitlines() == ["after import True True", "validate exit 0 collector True"], res.stderr
