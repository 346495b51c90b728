"""A real firewalld inside a test's namespace: its own system D-Bus (dbus-daemon with a private
socket; DBUS_SYSTEM_BUS_ADDRESS points there), a mount namespace with a temporary /etc/firewalld
and a tmpfs on /run, so nothing of this machine's firewalld configuration or run state is
touched, and firewalld's rules land in the namespace's own nftables."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from .netns import Netns

FIREWALLD = "org.fedoraproject.FirewallD1"
BUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/><allow own="*"/><allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/><allow eavesdrop="true"/>
  </policy>
</busconfig>
"""


def missing() -> str | None:
    for tool in ("firewalld", "firewall-cmd", "dbus-daemon", "busctl", "dbus-monitor", "unshare"):
        if not shutil.which(tool):
            return f"{tool} is not installed (Debian: firewalld, dbus, systemd, util-linux)"
    return None


class Firewalld:
    def __init__(self, ns: Netns, tmp: Path, default_zone: str = "drop"):
        self.ns, self.tmp = ns, tmp
        self.socket = tmp / "system_bus_socket"
        (tmp / "bus.conf").write_text(BUS_CONF.format(socket=self.socket))
        etc = tmp / "etc-firewalld"
        etc.mkdir()
        (etc / "firewalld.conf").write_text(f"DefaultZone={default_zone}\nFirewallBackend=nftables\n")
        self.env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=f"unix:path={self.socket}")
        self.bus = subprocess.Popen(["ip", "netns", "exec", ns.name, "dbus-daemon", "--nofork",
                                     f"--config-file={tmp / 'bus.conf'}"], stdout=subprocess.DEVNULL)
        self._until(self.socket.exists, "dbus-daemon's socket")
        script = (f"mount -t tmpfs tmpfs /run && mount --bind {etc} /etc/firewalld && "
                  f"exec firewalld --nofork --nopid --log-file {tmp / 'firewalld.log'}")
        self.log = open(tmp / "firewalld.out", "w")
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns.name, "unshare", "--mount", "--propagation", "private",
                                      "sh", "-c", script], env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        self._until(lambda: self.cmd("--state", check=False).stdout.strip() == "running", "firewalld", timeout=30)

    def _until(self, ok, what: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not ok():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} did not come up: {(self.tmp / 'firewalld.out').read_text()[-2000:]}"
                                   if (self.tmp / "firewalld.out").exists() else f"{what} did not come up")
            time.sleep(0.1)

    def cmd(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.ns.run("firewall-cmd", *args, env=self.env, check=check)

    def close(self) -> None:
        for proc in (self.proc, self.bus):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.log.close()
