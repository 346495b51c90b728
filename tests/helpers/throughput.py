"""Measured TCP throughput between two namespaces, with nothing but Python: a receiver counts
the bytes one sender writes and times them from the first byte to the end."""

from __future__ import annotations

import subprocess
import sys

_RECEIVE = r"""
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); print("ready", flush=True)
c, _ = s.accept(); first = None; total = 0
while True:
    b = c.recv(1 << 16)
    if not b: break
    first = first or time.monotonic(); total += len(b)
print(total, first, time.monotonic(), flush=True)  # CLOCK_MONOTONIC: one clock for every namespace
"""

_SEND = r"""
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60)
chunk = b"x" * 65536; left = int(sys.argv[3])
while left > 0:
    c.sendall(chunk[:left]); left -= len(chunk)
c.close()
"""


class Transfer:
    """`size` bytes from netns `sender` to `addr:port`, where netns `receiver` listens."""

    def __init__(self, receiver: str, sender: str, addr: str, port: int, size: int = 4 * 1024 * 1024):
        self.sender, self.addr, self.port, self.size = sender, addr, port, size
        self.rx = subprocess.Popen(["ip", "netns", "exec", receiver, sys.executable, "-c", _RECEIVE, addr, str(port)],
                                   stdout=subprocess.PIPE, text=True)
        assert self.rx.stdout.readline().strip() == "ready"

    def start(self) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.sender, sys.executable, "-c", _SEND,
                                 self.addr, str(self.port), str(self.size)])

    def result(self, timeout: float = 120) -> tuple[int, float, float]:
        """Wait for the transfer: (bytes, first byte's time, end time)."""
        out, _ = self.rx.communicate(timeout=timeout)
        total, first, end = out.split()
        assert int(total) == self.size, out
        return int(total), float(first), float(end)

    def mbit(self, timeout: float = 120) -> float:
        total, first, end = self.result(timeout)
        return total * 8 / (end - first) / 1e6


def measure(receiver: str, sender: str, addr: str, port: int, size: int = 4 * 1024 * 1024) -> float:
    t = Transfer(receiver, sender, addr, port, size)
    tx = t.start()
    rate = t.mbit()
    tx.wait(timeout=30)
    return rate


def concurrent(transfers: list[Transfer]) -> float:
    """Transfers at the same time: their aggregate rate in Mbit/s, from the first byte to the
    last (each one's own rate would count the time it ran alone twice)."""
    senders = [t.start() for t in transfers]
    results = [t.result() for t in transfers]
    for s in senders:
        s.wait(timeout=30)
    total = sum(r[0] for r in results)
    return total * 8 / (max(r[2] for r in results) - min(r[1] for r in results)) / 1e6


def within_limit(run, floor: float, ceiling: float, tries: int = 3) -> list[float]:
    """Rates of `run(trial)` for trial 0, 1, ... until one reaches `floor` (at most `tries`).
    A shaped link's measured rate can fall short of its limit on a loaded VM: a tbf whose
    dequeue timer fires late loses the tokens past its burst (64 KiB is 51 ms at 10 Mbit/s),
    and a descheduled sender leaves the queue empty. Neither can add rate, so a short trial is
    retried while every trial above `ceiling` fails."""
    rates = []
    for trial in range(tries):
        rates.append(run(trial))
        assert rates[-1] <= ceiling, rates
        if rates[-1] >= floor:
            return rates
    raise AssertionError(f"no trial reached {floor} Mbit/s: {rates}")


__all__ = ["Transfer", "measure", "concurrent", "within_limit"]
