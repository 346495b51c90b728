"""What this host's QEMU can do: binary, version, network backends, KVM, vhost-net."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import lru_cache


def binary() -> str | None:
    return os.environ.get("KVMNET_QEMU") or shutil.which("qemu-system-x86_64")


@lru_cache(maxsize=None)
def version(exe: str) -> tuple[int, ...]:
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    found = re.search(r"version (\d+)\.(\d+)(?:\.(\d+))?", out)
    return tuple(int(x) for x in found.groups(default="0")) if found else (0,)


@lru_cache(maxsize=None)
def netdev_backends(exe: str) -> frozenset[str]:
    """`-netdev help` lists the compiled-in backends (user needs slirp, for one)."""
    out = subprocess.run([exe, "-netdev", "help"], capture_output=True, text=True).stdout
    return frozenset(line.strip() for line in out.splitlines()[1:] if line.strip())


HELPERS = ("/usr/lib/qemu/qemu-bridge-helper", "/usr/libexec/qemu-bridge-helper")  # Debian, Fedora


def bridge_helper() -> str:
    """qemu-bridge-helper's path ($KVMNET_QEMU_BRIDGE_HELPER first)."""
    given = os.environ.get("KVMNET_QEMU_BRIDGE_HELPER")
    return given or next((p for p in HELPERS if os.path.exists(p)), HELPERS[0])


def vhost_net() -> bool:
    return os.path.exists("/dev/vhost-net")


def kvm_works(exe: str, timeout: float = 5) -> tuple[bool, str]:
    """Start a paused KVM guest with a vCPU and quit it over QMP: the only honest test, since
    /dev/kvm can exist while nested KVM fails at vCPU set-up (as on this project's CI VMs)."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is missing or not accessible"
    qmp = '{"execute":"qmp_capabilities"}\n{"execute":"cont"}\n{"execute":"quit"}\n'
    try:
        res = subprocess.run([exe, "-accel", "kvm", "-cpu", "host", "-machine", "pc", "-nodefaults",
                              "-display", "none", "-S", "-qmp", "stdio", "-m", "32"],
                             input=qmp, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, "a KVM test guest hung (nested virtualization not working)"
    if res.returncode != 0:
        reason = (res.stderr.strip().splitlines() or ["exit status %d" % res.returncode])[-1]
        return False, f"a KVM test guest failed: {reason}"
    return True, "KVM works"
