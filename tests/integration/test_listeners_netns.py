"""The ports a forward would shadow, read from a real namespace: sock_diag's listening TCP
sockets are /proc/net/tcp{,6}'s, and apply refuses a forward onto one of them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from helpers.netns import ROOT

pytestmark = pytest.mark.root

# listeners on IPv4 and IPv6, a connected pair (its sockets listen on nothing), a UDP socket
SOCKETS = textwrap.dedent("""
    import socket, sys, time
    v4 = socket.create_server(("127.0.0.1", 18080))
    v6 = socket.create_server(("::1", 18081), family=socket.AF_INET6)
    client = socket.create_connection(("127.0.0.1", 18080))
    accepted, _ = v4.accept()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 18082))
    print("ready", client.getsockname()[1], flush=True)
    time.sleep(60)
""")

READ = textwrap.dedent("""
    import json, sys
    from kvmnet.host import procs, sockdiag
    assert sockdiag.listening() is not None  # this kernel answers: the fast path is the one compared
    fast = procs.listening()
    sockdiag.listening = lambda: None  # as on a kernel without inet_diag: /proc/net/tcp{,6}
    slow = procs.listening()
    print(json.dumps([sorted([*k, sorted(v)] for k, v in found.items()) for found in (fast, slow)]))
""")

TOPOLOGY = textwrap.dedent("""
    [networks.lab]
    mode = "nat"
    bridge = "kvls0"
    subnet = "10.79.0.0/24"

    [[networks.lab.forwards]]
    proto = "tcp"
    host_port = 18081
    guest = "10.79.0.10"
    guest_port = 80
""")


@pytest.fixture
def sockets(netns):
    proc = subprocess.Popen(["ip", "netns", "exec", netns.name, sys.executable, "-c", SOCKETS],
                            stdout=subprocess.PIPE, text=True)
    try:
        words = proc.stdout.readline().split()
        assert words and words[0] == "ready"
        yield int(words[1])
    finally:
        proc.kill()
        proc.wait()


def test_sock_diag_lists_what_proc_lists(netns, sockets):
    out = netns.run(sys.executable, "-c", READ, env={"PYTHONPATH": str(ROOT)}).stdout
    fast, slow = json.loads(out)
    assert fast == slow
    ports = {(proto, port) for proto, port, _ in fast}
    assert {("tcp", 18080), ("tcp", 18081), ("udp", 18082)} <= ports
    assert ("tcp", sockets) not in ports  # the client's end of the connection listens on nothing


def test_a_forward_onto_a_listening_port_is_refused(netns, sockets, tmp_path):
    path = tmp_path / "ls.toml"
    path.write_text(TOPOLOGY)
    before = netns.snapshot()
    res = netns.kvmnet("apply", str(path))
    assert res.returncode == 2, res.stdout + res.stderr
    assert "networks.lab.forwards[0].host_port: tcp port 18081 is already in use on this host by" in res.stderr
    assert "(python" in res.stderr  # the process holding it, found by the socket's inode
    assert netns.snapshot() == before
