"""`kvmnet watch` running in a test's namespace: started, its stderr log read, stopped."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from .netns import KVMNET, ROOT, Netns


class Watch:
    def __init__(self, ns: Netns, log: Path, *args: str, env: dict | None = None):
        self.ns, self.log_path = ns, log
        full_env = dict(os.environ, KVMNET_STATE_DIR=str(ns.state_dir), PYTHONPATH=str(ROOT), **(env or {}))
        self.log_file = open(log, "w")
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns.name, *KVMNET, "watch", *args], env=full_env,
                                     stdout=subprocess.DEVNULL, stderr=self.log_file)
        self.wait_for("watching ")

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_for(self, pattern: str, timeout: float = 10, count: int = 1) -> str:
        """Wait until `pattern` (a regex) appears `count` times in the log; return the log."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log()
            if len(re.findall(pattern, text)) >= count:
                return text
            if self.proc.poll() is not None:
                raise AssertionError(f"watch exited ({self.proc.returncode}) before {pattern!r}:\n{text}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} within {timeout} s:\n{text}")
            time.sleep(0.02)

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, float]:
        """Signal it; (exit code, seconds it took to exit)."""
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.log_file.close()
        return rc, time.monotonic() - t0

    def close(self) -> None:
        if self.proc.poll() is None:
            self.stop()
