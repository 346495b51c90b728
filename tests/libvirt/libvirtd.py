"""A private libvirtd for tests: the monolithic daemon of Debian 12 with only its network driver,
run in a network namespace of its own plus a private mount namespace, so nothing it does reaches
this machine's network, /etc or /run.

Inside the mount namespace /run, /var/lib, /var/log and /var/cache are fresh tmpfs mounts, and
/etc/libvirt and /var/lib/libvirt are bind mounts of directories in the daemon's temp dir (its
config and its dnsmasq files, readable by the test). Its sockets live in that temp dir too, so
`virsh -c network:///system?socket=...` reaches it from outside both namespaces. Without D-Bus it
writes its firewall rules with iptables (iptables-nft here), inside its network namespace."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # bench/sections/libvirt.py uses this module too, without the tests' helpers
    from helpers.netns import Netns

LIBVIRTD = "/usr/sbin/libvirtd"
NETWORK_DRIVER_GLOB = "/usr/lib/*/libvirt/connection-driver/libvirt_driver_network.so"

# runs inside `ip netns exec NS unshare -m --propagation private`: $1 = the temp dir
_START = """set -e
for d in /run /var/lib /var/log /var/cache; do mount -t tmpfs -o mode=0755 tmpfs "$d"; done
mkdir -p /var/lib/libvirt /run/libvirt
mount --bind "$1/lib" /var/lib/libvirt
mount --bind "$1/etc" /etc/libvirt
export LIBVIRT_DRIVER_DIR="$1/drivers"
exec "$2" -f /etc/libvirt/libvirtd.conf
"""


class Unavailable(Exception):
    """libvirtd cannot run here; the message says why (the tests skip with it)."""


def missing() -> str | None:
    """Why libvirt cannot be used on this machine, or None."""
    if not os.path.exists(LIBVIRTD) or not glob.glob(NETWORK_DRIVER_GLOB):
        return "libvirt-daemon is not installed (scripts/test installs it as root: apt-get install libvirt-daemon)"
    if not shutil.which("virsh"):
        return "virsh is not installed (scripts/test installs it as root: apt-get install libvirt-clients)"
    if not shutil.which("unshare"):
        return "unshare (util-linux) is missing: libvirtd needs a private mount namespace"
    return None


class Libvirtd:
    """One daemon in the namespace `ns` (which the caller owns and deletes): anything with the
    namespace's `name` and a `kill_all()` of its processes."""

    def __init__(self, ns: Netns):
        self.ns = ns
        self.dir = Path(tempfile.mkdtemp(prefix="kn-libvirtd-"))
        self.proc: subprocess.Popen | None = None
        for sub in ("etc", "lib", "sock", "log", "drivers"):
            (self.dir / sub).mkdir()
        os.symlink(glob.glob(NETWORK_DRIVER_GLOB)[0], self.dir / "drivers" / "libvirt_driver_network.so")
        (self.dir / "etc" / "libvirtd.conf").write_text(
            'auth_unix_rw = "none"\nauth_unix_ro = "none"\n'
            f'unix_sock_dir = "{self.dir}/sock"\nunix_sock_rw_perms = "0700"\n'
            f'log_outputs = "3:file:{self.dir}/log/libvirtd.log"\n')
        self.uri = f"network:///system?socket={self.dir}/sock/libvirt-sock"

    def start(self, timeout: float = 20) -> None:
        script = self.dir / "start.sh"
        script.write_text(_START)
        out = open(self.dir / "log" / "stdout", "w")
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns.name, "unshare", "-m", "--propagation",
                                      "private", "sh", str(script), str(self.dir), LIBVIRTD],
                                     stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while self.virsh("net-list", "--all", check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise Unavailable(f"libvirtd did not start: {self.log_tail()}")
            time.sleep(0.1)

    def virsh(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        res = subprocess.run(["virsh", "-q", "-c", self.uri, *args], text=True, capture_output=True, timeout=60)
        if check and res.returncode:
            raise AssertionError(f"virsh {' '.join(args)}: {res.stderr.strip()}\n{self.log_tail()}")
        return res

    def timed_virsh(self, *args: str) -> float:
        """Wall time of one virsh command, in ms (it must succeed)."""
        t0 = time.perf_counter()
        self.virsh(*args)
        return (time.perf_counter() - t0) * 1000

    def dnsmasq_conf(self, network: str) -> str:
        return (self.dir / "lib" / "dnsmasq" / f"{network}.conf").read_text()

    def log_tail(self, lines: int = 8) -> str:
        text = ""
        for name in ("stdout", "libvirtd.log"):
            path = self.dir / "log" / name
            if path.exists():
                text += "".join(path.read_text().splitlines(True)[-lines:])
        return text.strip()

    def stop(self) -> None:
        """Stop the daemon and whatever it started (dnsmasq); remove its files."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.ns.kill_all()  # its dnsmasq processes (the namespace is the daemon's alone)
        shutil.rmtree(self.dir, ignore_errors=True)
