"""Private files in kvmnet's state dir, written atomically: a reader (or a crash) sees the old
content or the new, never half of it."""

from __future__ import annotations

import os


def write_private(path: str, text: str, durable: bool = False) -> None:
    """Write `text` to `path` as mode 0600 through a temp file and a rename; `durable` fsyncs
    first (the state record, which must survive a power cut before the step it covers runs)."""
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
