"""The reloadable dnsmasq files: readable by dnsmasq's group (it reads them after dropping
privileges, at start and on SIGHUP), and nothing else in the state dir is."""

import os
import stat
import subprocess
import tempfile

import pytest

from kvmnet.errors import HostError
from kvmnet.host.dnsmasq_files import prepare_reload_files

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: chown to dnsmasq's group")


def _as_nobody(path: str) -> subprocess.CompletedProcess:
    return subprocess.run(["cat", path], user="nobody", group="nogroup", capture_output=True, text=True)


def test_dnsmasqs_group_reads_the_hosts_files_and_nothing_else():
    root = tempfile.mkdtemp(prefix="kn-files-")  # a 0700 state dir under /tmp, as statedir makes it
    try:
        os.makedirs(f"{root}/t", mode=0o700)
        with open(f"{root}/t/state.json", "w") as f:
            f.write("{}")
        os.chmod(f"{root}/t/state.json", 0o600)
        prepare_reload_files(f"{root}/t/dnsmasq-n.conf", "10.0.0.5 a\n", "52:54:00:00:00:05,10.0.0.5,a\n", "nogroup")
        assert _as_nobody(f"{root}/t/dnsmasq-n.d/hosts").stdout == "10.0.0.5 a\n"
        assert _as_nobody(f"{root}/t/dnsmasq-n.d/dhcp-hosts").stdout == "52:54:00:00:00:05,10.0.0.5,a\n"
        assert _as_nobody(f"{root}/t/state.json").returncode != 0
        for path, mode in ((root, 0o710), (f"{root}/t", 0o710), (f"{root}/t/dnsmasq-n.d", 0o710),
                           (f"{root}/t/dnsmasq-n.d/hosts", 0o640)):
            st = os.stat(path)
            assert (stat.S_IMODE(st.st_mode), st.st_uid) == (mode, 0), path
    finally:
        subprocess.run(["rm", "-rf", root], check=True)


def test_a_parent_dnsmasq_cannot_traverse_is_refused_not_changed(tmp_path):
    parent = tmp_path / "private"
    parent.mkdir(mode=0o700)
    os.makedirs(parent / "state" / "t")
    os.chmod(parent / "state", 0o700), os.chmod(parent / "state" / "t", 0o700)
    with pytest.raises(HostError) as exc:
        prepare_reload_files(str(parent / "state" / "t" / "dnsmasq-n.conf"), "", "", "nogroup")
    assert "dnsmasq's group (nogroup) cannot traverse" in str(exc.value)
    for path in (parent, parent / "state", parent / "state" / "t"):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o700 and os.stat(path).st_gid == 0  # nothing changed
    assert not (parent / "state" / "t" / "dnsmasq-n.d").exists()


def test_removing_an_instance_drops_the_temp_file_of_a_killed_write(tmp_path):
    """A kill between a reload file's temp write and its rename leaves `dhcp-hosts.tmp.PID` in
    the instance's directory (seen in tests/reliability/test_crash.py): removing the instance
    takes it too, and the directory with it; anything else in there is left alone."""
    from kvmnet.host.dnsmasq_files import remove_instance_files
    from kvmnet.render.dnsmasq import reload_paths

    conf = tmp_path / "dnsmasq-default.conf"
    conf.write_text("x")
    paths = reload_paths(str(conf))
    os.mkdir(paths["dir"])
    for name in ("hosts", "dhcp-hosts", "dhcp-hosts.tmp.3057", "hosts.tmp.12"):
        (tmp_path / paths["dir"] / name).write_text("")
    remove_instance_files(str(conf), None)
    assert not os.path.exists(paths["dir"]) and not conf.exists()
    os.mkdir(paths["dir"])
    for name in ("dhcp-hosts.tmp.3057", "notes.tmp.7", "dhcp-hosts.tmp.x"):
        (tmp_path / paths["dir"] / name).write_text("")
    remove_instance_files(str(conf), None)
    assert sorted(os.listdir(paths["dir"])) == ["dhcp-hosts.tmp.x", "notes.tmp.7"]
