"""Per-namespace sysctls under /proc/sys/net (they follow the caller's network namespace)."""

from __future__ import annotations


def read(path: str) -> str | None:
    try:
        with open(f"/proc/sys/{path}") as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def write(path: str, value: str) -> None:
    try:
        with open(f"/proc/sys/{path}", "w") as f:
            f.write(value)
    except FileNotFoundError:
        if "/conf/" not in path:
            raise
        # a per-interface sysctl whose interface is gone: nothing left to set or restore
