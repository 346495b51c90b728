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
    return None
