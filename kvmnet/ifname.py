"""Interface-name rules, without importing anything: QEMU's hook path uses this on every start."""

IFNAMSIZ = 15  # bytes, without the trailing NUL
_ALLOWED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def problem(name: str) -> str | None:
    """Why the kernel (or kvmnet's shell-free policy) would reject this interface name, or None."""
    size = len(name.encode())
    if size == 0:
        return "interface name is empty"
    if size > IFNAMSIZ:
        return f"{name!r} is {size} bytes; interface names are at most {IFNAMSIZ} bytes (kvmnet never truncates)"
    if name in (".", "..") or name[0] in ".-" or not set(name) <= _ALLOWED:
        return f"{name!r} is not a valid interface name (letters, digits, '_', '-', '.' only)"
    if name in _RESERVED:
        return f"{name!r} is reserved: {_RESERVED[name]}"
    return None


# names a link may not take: the kernel's per-protocol sysctl dirs (net/ipv4/conf/all, default)
# clash with them, and qemu-bridge-helper reads `allow all` in bridge.conf as any bridge at all
_RESERVED = {"all": "net/ipv4/conf/all is every interface's sysctl, and `allow all` lets QEMU join any bridge",
             "default": "net/ipv4/conf/default is the sysctl new interfaces copy"}
