"""Boot the kvmnet test guest under QEMU (TCG) and talk to it.  Stdlib only.

The guest (scripts/build-test-guest + scripts/guest-init) takes a DHCP lease
on every NIC and prints parseable markers on ttyS0, which we log to a file;
ttyS1 is a root shell that QEMU exposes on a unix socket.

    from labkit.guest import Guest, nic_args, http_get

    with Guest("web", nic_args("user", 0), netns="some-netns") as g:   # a namespace you made
        assert g.leases()["eth0"]["ip"] == "10.0.2.15/24"
        rc, out = g.run("ping -c1 -W2 10.0.2.2")

With `append="kvmnet.ipv6=N"` the guest also waits (up to N s per step) for
each NIC's SLAAC address and a DHCPv6 lease (ISC dhclient -6, in the image
because busybox has no DHCPv6 client) and reports them: `g.leases6()`.

Guest NIC names follow driver load order (virtio, then e1000, then 8139),
not PCI order: with mixed models match leases by MAC.  Guest tools are
busybox 1.35: fetch with `timeout 5 wget -qO- URL` (its `wget -T` segfaults);
ping, nslookup, ip, nc, udhcpc are there too.
"""
from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import functools
import math
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
QEMU = "qemu-system-x86_64"
# Quiet console so our markers are easy to find; panic=-1 + -no-reboot turn
# a crashed /init into a QEMU exit instead of a hang.
BASE_APPEND = "console=ttyS0 loglevel=1 quiet panic=-1"


class GuestError(RuntimeError):
    pass


def skip_reason() -> str | None:
    """Why guest tests cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool, pkg in ((QEMU, "qemu-system-x86"), ("ip", "iproute2"),
                      ("apt-get", "apt"), ("dpkg-deb", "dpkg")):
        if not shutil.which(tool):
            return f"{tool} not found (apt-get install {pkg})"
    if not os.path.exists("/bin/busybox"):
        return "/bin/busybox not found (apt-get install busybox-static)"
    return None


@functools.lru_cache(maxsize=None)
def build_guest() -> tuple[Path, Path]:
    """Build (or reuse) the guest once per process; return (kernel, initrd).

    The kernel is the uncompressed vmlinux when the build produced one (QEMU
    boots it via PVH, ~4 s faster under TCG than decompressing vmlinuz)."""
    r = subprocess.run([str(REPO / "scripts" / "build-test-guest")],
                       capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise GuestError(f"build-test-guest failed ({r.returncode}):\n{r.stderr[-3000:]}")
    out = Path(r.stdout.strip().splitlines()[-1])
    kernel = out / "vmlinux" if (out / "vmlinux").exists() else out / "vmlinuz"
    return kernel, out / "initrd.img"


def nic_args(netdev: str, idx: int, model: str = "virtio-net-pci") -> list[str]:
    """QEMU args for NIC number idx: netdev is e.g. "user", "user,hostfwd=...",
    "tap,ifname=t0,script=no,downscript=no".  MAC is 52:54:00:4b:4e:<idx>."""
    return ["-netdev", f"{netdev},id=n{idx}",
            "-device", f"{model},netdev=n{idx},mac={mac(idx)}"]


def mac(idx: int) -> str:
    return f"52:54:00:4b:4e:{idx:02x}"


def http_get(url: str, netns: str | None = None, timeout: float = 10) -> str:
    """Fetch url with Python's urllib, from inside netns if given.  Proxies are
    disabled: an inherited http_proxy would otherwise hijack 127.0.0.1."""
    code = ("import sys, urllib.request as u\n"
            "o = u.build_opener(u.ProxyHandler({}))\n"
            "sys.stdout.write(o.open(sys.argv[1], timeout=float(sys.argv[2])).read().decode())")
    cmd = [sys.executable, "-c", code, url, str(timeout)]
    if netns:
        cmd = ["ip", "netns", "exec", netns] + cmd
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 10)
    if r.returncode != 0:
        raise GuestError(f"GET {url} failed: {r.stderr.strip()[-500:]}")
    return r.stdout


_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _die_with_parent():
    # Runs in the child before exec: if this Python process dies, even by
    # SIGKILL, the kernel kills QEMU too.  `ip netns exec` execs QEMU in the
    # same process, so the setting reaches QEMU.  (It fires when the *thread*
    # that started QEMU exits: start guests from the main/test thread.)
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


_live: set["Guest"] = set()
atexit.register(lambda: [g.stop(poweroff=False) for g in list(_live)])


class Guest:
    """One QEMU guest.  Use as a context manager: enter = boot until
    KVMNET-READY, exit = stop (poweroff, then kill); QEMU is always reaped."""

    def __init__(self, name: str, net_args: list[str] = (), *, netns: str | None = None,
                 memory: int = 128, append: str = "", qemu_args: list[str] = (),
                 kernel: Path | None = None, initrd: Path | None = None,
                 boot_timeout: float = 120, nodefaults: bool = True,
                 outer: list[str] = (), inner: list[str] = (), owner: tuple[int, int] | None = None):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]*", name):
            raise ValueError(f"guest name must be a hostname: {name!r}")
        self.name, self.net_args, self.netns = name, list(net_args), netns
        self.memory, self.append, self.qemu_args = memory, append, list(qemu_args)
        self.kernel, self.initrd, self.boot_timeout = kernel, initrd, boot_timeout
        # nodefaults=False keeps QEMU's default devices (a user-mode NIC among them): for tests
        # of what the arguments alone leave out
        self.defaults = [] if nodefaults else ["-vga", "none", "-monitor", "none", "-parallel", "none"]
        # outer + ip netns exec NS + inner + QEMU: e.g. a private mount namespace outside,
        # `setpriv` to an unprivileged user inside; owner (uid, gid) then gets the guest's dir
        self.outer, self.inner, self.owner = list(outer), list(inner), owner
        self.proc: subprocess.Popen | None = None
        self.boot_seconds: float | None = None   # start -> all leases reported
        self.stopped_by: str | None = None       # poweroff | SIGTERM | SIGKILL
        self._sock: socket.socket | None = None
        self._ready = self._synced = False
        self._console_text = ""

    # --- lifecycle -------------------------------------------------------
    def start(self) -> "Guest":
        kernel, initrd = (self.kernel, self.initrd) if self.kernel else build_guest()
        # /tmp, not $TMPDIR: a unix socket path must fit in 108 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix=f"kvmnet-guest-{self.name}-", dir="/tmp"))
        self.console_path = self.dir / "console.log"
        self.sock_path = self.dir / "cmd.sock"
        cmd = [QEMU, "-accel", "tcg", "-m", str(self.memory),
               *(self.defaults or ["-nodefaults"]), "-nographic", "-no-reboot",
               "-kernel", str(kernel), "-initrd", str(initrd),
               "-append", f"{BASE_APPEND} kvmnet.name={self.name} {self.append}".strip(),
               "-serial", f"file:{self.console_path}",                   # ttyS0
               "-chardev", f"socket,id=cmd,path={self.sock_path},server=on,wait=off",
               "-serial", "chardev:cmd",                                 # ttyS1
               *self.net_args, *self.qemu_args]
        cmd = self.inner + cmd
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns] + cmd
        cmd = self.outer + cmd
        if self.owner:
            os.chown(self.dir, *self.owner)
        self.cmdline = cmd
        self._qemu_log = open(self.dir / "qemu.log", "wb")
        self._t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._qemu_log,
                                     stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
                                     start_new_session=True)  # no terminal ^C to QEMU
        _live.add(self)
        return self

    def wait_ready(self, timeout: float | None = None) -> dict:
        self.wait_for(r"KVMNET-READY", timeout or self.boot_timeout)
        self.boot_seconds = time.monotonic() - self._t0
        self._ready = True
        return self.leases()

    def stop(self, timeout: float = 15, poweroff: bool = True) -> int | None:
        """Power the guest off (if it booted), else/then kill it.  Idempotent."""
        if self.proc is None:
            return None
        try:
            if self.proc.poll() is None and poweroff and self._ready:
                with contextlib.suppress(OSError, GuestError, TimeoutError):
                    if not self._synced:
                        self._sync(5)
                    self._send(b"poweroff -f\n")
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout)
                    self.stopped_by = "poweroff"
            if self.proc.poll() is None:
                self.proc.terminate()          # QEMU exits cleanly on SIGTERM
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(5)
                    self.stopped_by = "SIGTERM"
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.stopped_by = "SIGKILL"
            self.proc.wait()
            _live.discard(self)
            if self._sock:
                self._sock.close()
                self._sock = None
            self._console_text = self.console    # keep it readable after cleanup
            self._qemu_log.close()
            shutil.rmtree(self.dir, ignore_errors=True)
        return self.proc.returncode

    def __enter__(self) -> "Guest":
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop(poweroff=False)
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- console (ttyS0) -------------------------------------------------
    @property
    def console(self) -> str:
        try:
            return self.console_path.read_text(errors="replace").replace("\r", "")
        except (AttributeError, FileNotFoundError):
            return self._console_text

    def _diag(self) -> str:
        try:
            qlog = (self.dir / "qemu.log").read_text(errors="replace")[-1500:]
        except (AttributeError, FileNotFoundError):
            qlog = ""
        return (f"\n--- command: {' '.join(getattr(self, 'cmdline', []))}"
                f"\n--- console tail:\n{self.console[-3000:]}\n--- qemu output:\n{qlog}")

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match:
        """Wait until regex (MULTILINE) matches the console log."""
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.console)
            if m:
                return m
            if self.proc.poll() is not None:
                raise GuestError(f"QEMU exited ({self.proc.returncode}) before "
                                 f"/{pattern}/ appeared{self._diag()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"/{pattern}/ not on console after {timeout}s{self._diag()}")
            time.sleep(0.05)

    def leases(self) -> dict[str, dict[str, str | None]]:
        """{iface: {ip, router, dns, via, mac}} from KVMNET-(NO)LEASE lines;
        ip is "a.b.c.d/len" or None for KVMNET-NOLEASE; empty values are ''."""
        out = {}
        # Not anchored at ^: BIOS output may precede the first marker.
        for kind, iface, rest in re.findall(r"KVMNET-(LEASE|NOLEASE) (\S+) ?(.*)$",
                                            self.console, re.M):
            fields = dict(f.split("=", 1) for f in rest.split() if "=" in f)
            if kind == "NOLEASE":
                fields["ip"] = None
            out[iface] = fields
        return out

    def leases6(self) -> dict[str, dict[str, str]]:
        """{iface: {slaac, dhcp6, router6, dns6}} from KVMNET-LEASE6 lines (booted with
        kvmnet.ipv6=N); addresses are "addr/len", '' when not obtained."""
        return {iface: dict(f.split("=", 1) for f in rest.split() if "=" in f)
                for iface, rest in re.findall(r"KVMNET-LEASE6 (\S+) ?(.*)$", self.console, re.M)}

    # --- command channel (ttyS1) -----------------------------------------
    def _send(self, data: bytes) -> None:
        if self._sock is None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(self.sock_path))
            self._sock = s
        self._sock.sendall(data)

    def _read_until(self, rx: re.Pattern, timeout: float) -> tuple[str, re.Match]:
        buf, deadline = "", time.monotonic() + timeout
        while not (m := rx.search(buf)):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise TimeoutError(f"/{rx.pattern}/ not seen on ttyS1 in {timeout}s; "
                                   f"got {buf[-2000:]!r}{self._diag()}")
            self._sock.settimeout(min(left, 0.5))
            with contextlib.suppress(socket.timeout):
                data = self._sock.recv(65536)
                if not data:
                    raise GuestError("command channel closed")
                buf += data.decode(errors="replace").replace("\r", "")
        return buf, m

    def _sync(self, timeout: float = 30) -> None:
        # The ttyS1 shell starts just after KVMNET-READY; bytes sent before
        # its tty is open are lost (the UART FIFO is reset on open) or echoed
        # (before stty -echo).  So ping it until it answers.  The leading
        # newline ends any half-received line.
        deadline = time.monotonic() + timeout
        while True:
            tok = secrets.token_hex(6)
            self._send(f"\nprintf '%s-%s\\n' KVMNET-SYNC {tok}\n".encode())
            try:
                self._read_until(re.compile(rf"KVMNET-SYNC-{tok}\n"), 1)
                self._synced = True
                return
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise

    def run(self, cmd: str, timeout: float = 30) -> tuple[int, str]:
        """Run a shell command in the guest; return (exit status, stdout+stderr).

        The command travels base64-encoded (no quoting issues; 76-char lines
        stay far below the tty's 4095-byte line limit), runs in a child sh
        (a syntax error or `exit` cannot kill the channel) under the guest's
        `timeout`, so a hung command returns 143 instead of wedging the shell.
        Markers are printed with printf '%s-%s' so an echoed command line can
        never look like one."""
        if not self._ready:
            raise GuestError("guest not ready: use `with Guest(...)` or wait_ready()")
        if not self._synced:
            self._sync()
        tok = secrets.token_hex(6)
        b64 = base64.encodebytes(cmd.encode()).decode()
        self._send((f"base64 -d >/tmp/kc.sh <<'KC{tok}'\n{b64}KC{tok}\n"
                    f"printf '%s-%s\\n' KVMNET-BEGIN {tok}; "
                    f"timeout {math.ceil(timeout)} sh /tmp/kc.sh </dev/null 2>&1; "
                    f"printf '%s-%s %s\\n' KVMNET-END {tok} $?\n").encode())
        # Output not ending in a newline puts the END marker mid-line: no ^.
        buf, m = self._read_until(re.compile(rf"KVMNET-END-{tok} (\d+)\n"), timeout + 10)
        begin = f"KVMNET-BEGIN-{tok}\n"
        out = buf[buf.index(begin) + len(begin):m.start()] if begin in buf else buf[:m.start()]
        return int(m.group(1)), out

    def check(self, cmd: str, timeout: float = 30) -> str:
        """run() that raises on a non-zero exit status; returns the output."""
        rc, out = self.run(cmd, timeout)
        if rc != 0:
            raise GuestError(f"{cmd!r} exited {rc}:\n{out}")
        return out
