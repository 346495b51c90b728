"""Directories a test's dnsmasq reads as its own unprivileged user (a tftp_root): under /tmp and
mode 0755, since pytest's tmp_path sits below a 0700 directory that user cannot enter."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def readable_dir(prefix: str = "kvmnet-tftp-"):
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        os.chmod(path, 0o755)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
