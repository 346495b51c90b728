"""The files of one dnsmasq instance besides its configuration: the reloadable `hosts` and
`dhcp-hosts`, which dnsmasq reads *after* dropping privileges (at start and on SIGHUP), and the
private note of the bridge it was started for.

Everything else in the state dir stays private (0600 in 0700 directories). For the reloadable
files only, the directories on their path let dnsmasq's group traverse them (mode 0710, no
listing) and the files are 0640 root:<group>: nobody else can read them, nothing is writable.
"""

from __future__ import annotations

import grp
import os
import stat

from ..errors import HostError
from ..render.dnsmasq import reload_paths
from .files import is_temp_name, write_private

# parents kvmnet itself creates (the default state dir and its netns/ part): these it may open
# to dnsmasq's group; any other parent must already let others traverse it
OWN_PARENTS = "/run/kvmnet"


def read_text(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def prepare_reload_files(conf: str, hosts: str, dhcp_hosts: str, group: str) -> None:
    paths = reload_paths(conf)
    gid = grp.getgrnam(group).gr_gid
    if gid != 0:  # dnsmasq that stays root reads anything
        _let_group_traverse(os.path.dirname(paths["dir"]), gid)
    os.makedirs(paths["dir"], mode=0o700, exist_ok=True)
    os.chown(paths["dir"], -1, gid)
    os.chmod(paths["dir"], 0o710)
    for path, text in ((paths["hosts"], hosts), (paths["dhcp_hosts"], dhcp_hosts)):
        if read_text(path) != text or _owner(path) != gid:
            _write_group_readable(path, text, gid)


def _owner(path: str) -> int | None:
    try:
        return os.stat(path).st_gid
    except OSError:
        return None


def _write_group_readable(path: str, text: str, gid: int) -> None:
    """Atomically (dnsmasq may read it at any moment), 0640 root:<gid>."""
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchown(f.fileno(), -1, gid)
        os.fchmod(f.fileno(), 0o640)
        f.write(text)
    os.replace(tmp, path)


def _let_group_traverse(directory: str, gid: int) -> None:
    """Every directory from `directory` up to / must let `gid` through. The topology's dir and
    the state dir (and kvmnet's own /run/kvmnet parents) are opened to it if they are private;
    anything else is the administrator's and is never changed (checked before any change)."""
    mine = (directory, os.path.dirname(directory))
    to_open, path = [], directory
    while True:
        st = os.stat(path)
        if not (st.st_mode & 0o001 or (st.st_gid == gid and st.st_mode & 0o010)):
            ours = path in mine or path == OWN_PARENTS or path.startswith(OWN_PARENTS + "/")
            if not (ours and st.st_uid == os.geteuid() and st.st_mode & 0o070 == 0):
                raise HostError(f"dnsmasq's group ({grp.getgrgid(gid).gr_name}) cannot traverse {path}, so it "
                                f"could not read {directory}'s DNS and DHCP host files: let it through "
                                f"(chmod o+x {path}) or use a --state-dir under /run or /tmp")
            to_open.append((path, st.st_mode & 0o7777))
        if path == "/":
            break
        path = os.path.dirname(path)
    for path, mode in to_open:
        os.chown(path, -1, gid)
        os.chmod(path, mode | 0o010)


def write_bridge(conf: str, bridge: str, ifindex: int | None) -> None:
    """Which bridge (by index) the instance was started for: a bridge deleted and re-created
    has a new index, and dnsmasq's DHCP socket still names the old one."""
    path = reload_paths(conf)["bridge"]
    if ifindex is None:
        _unlink(path)
    else:
        write_private(path, f"{bridge} {ifindex}\n")


def remove_instance_files(conf: str, leases: str | None) -> None:
    paths = reload_paths(conf)
    for path in (conf, leases, paths["bridge"], paths["hosts"], paths["dhcp_hosts"]):
        if path:
            _unlink(path)
    _drop_killed_writes(paths["dir"], (paths["hosts"], paths["dhcp_hosts"]))
    for directory in (paths["dir"], os.path.dirname(leases) if leases else None):
        try:
            if directory:
                os.rmdir(directory)  # empty now (the lease dir: /var/lib/kvmnet/TOPOLOGY)
        except OSError:
            pass


def _drop_killed_writes(directory: str, names: tuple[str, ...]) -> None:
    """The temp files (`hosts.tmp.PID`) of a _write_group_readable killed before its rename:
    only those of the two reloadable files, only regular files of this user (the directory is
    kvmnet's own; the caller holds the state lock, so no live writer owns one)."""
    bases = {os.path.basename(n) for n in names}
    try:
        found = os.listdir(directory)
    except OSError:
        return
    for name in found:
        if not is_temp_name(name) or name.rpartition(".tmp")[0] not in bases:
            continue
        path = os.path.join(directory, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid():
            _unlink(path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
