"""An established TCP connection through one of a topology's port forwards, held open while the
topology changes: a stand-in guest (a namespace on a veth port of the bridge, the guest's
address, an echo server) and a client socket in this process (the host itself, through the
forward on a host address). After each change: does the same socket still echo, and is its
conntrack entry the same one (same id and start time: an entry made again for the same tuple
may get the same id, as the id hashes the entry's address)?"""

from __future__ import annotations

import json
import socket
import subprocess
import time

from bench.lib.common import PY, REPO, run

ECHO = REPO / "tests" / "helpers" / "echo_server.py"

PORT = "kvbhc0"  # the stand-in's port on the bridge


def conntrack_ids(dport: int) -> list[list[int]]:
    """[id, start time] of this namespace's conntrack entries for TCP to `dport` (as sent)."""
    from pyroute2 import NFCTSocket
    out = []
    with NFCTSocket() as ct:
        for msg in ct.dump():
            proto = msg.get_attr("CTA_TUPLE_ORIG").get_attr("CTA_TUPLE_PROTO")
            if proto.get_attr("CTA_PROTO_NUM") == 6 and proto.get_attr("CTA_PROTO_DST_PORT") == dport:
                out.append([msg.get_attr("CTA_ID"), msg.get_attr("CTA_TIMESTAMP").get_attr("CTA_TIMESTAMP_START")])
    return out


def forwarding(port: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while json.loads(run(["bridge", "-j", "link", "show", "dev", port]).stdout)[0].get("state") != "forwarding":
        if time.monotonic() > deadline:
            raise TimeoutError(f"bridge port {port} is not forwarding after {timeout} s")
        time.sleep(0.1)


class HeldConnection:
    def __init__(self, peer: str, bridge: str, guest_cidr: str, gateway: str, guest_port: int, host_port: int):
        self.peer, self.host_port = peer, host_port
        inside = ["ip", "netns", "exec", peer]
        run(["sysctl", "-qw", "net.netfilter.nf_conntrack_timestamp=1"])  # this (the section's) namespace
        run(["ip", "link", "add", PORT, "type", "veth", "peer", "name", "eth0", "netns", peer])
        run(["ip", "link", "set", PORT, "master", bridge, "up"])
        for cmd in (["ip", "addr", "add", guest_cidr, "dev", "eth0"], ["ip", "link", "set", "eth0", "up"],
                    ["ip", "route", "add", "default", "via", gateway]):
            run(inside + cmd)
        self.server = subprocess.Popen(inside + [PY, str(ECHO), str(guest_port)])
        forwarding(PORT, 40)  # with STP on (the default), a new port forwards only after 2 x forward delay
        deadline = time.monotonic() + 10
        while True:  # until the server listens: connections are refused before
            try:
                self.sock = socket.create_connection((gateway, host_port), timeout=5)
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.ids = conntrack_ids(host_port)
        if not self.echo("held") or len(self.ids) != 1:
            raise RuntimeError(f"the held connection does not work: conntrack ids {self.ids}")

    def echo(self, text: str) -> bool:
        try:
            self.sock.sendall(text.encode())
            return self.sock.recv(4096) == text.encode()
        except OSError:
            return False

    def survived(self, label: str) -> dict:
        ok = self.echo(label)
        ids = conntrack_ids(self.host_port)
        return {"echoes": ok, "same_conntrack_entry": ids == self.ids, "conntrack_ids": ids}

    def close(self) -> None:
        self.sock.close()
        self.server.kill()
        self.server.wait()
        run(["ip", "link", "del", PORT], check=False)


def held_ok(seen: dict | None) -> list[str]:
    """What went wrong with the held connection after a change (survived()'s result)."""
    if seen is None:
        return ["the held connection was not checked"]
    return [] if seen["echoes"] and seen["same_conntrack_entry"] else [f"the connection held through another "
                                                                      f"forward broke: {seen}"]
