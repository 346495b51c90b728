"""host/sockdiag.py's codec: the request `ss -lt` sends, and the replies it reads."""

import socket
import struct

from kvmnet.host import sockdiag


def _reply(state: int, port: int, inode: int, family: int = socket.AF_INET) -> tuple[int, bytes]:
    sockid = struct.pack("!HH", port, 0) + b"\0" * 44  # sport, dport (big-endian), addresses, if, cookie
    return 20, struct.pack("=BBBB", family, state, 0, 0) + sockid + struct.pack("=IIIII", 0, 0, 0, 0, inode)


def test_the_request_asks_for_listening_tcp_sockets_of_one_family():
    msg = sockdiag.build_request(socket.AF_INET6)
    length, kind, flags = struct.unpack_from("=IHH", msg)
    assert length == len(msg) == 16 + 56 and kind == 20 and flags == 0x301  # SOCK_DIAG_BY_FAMILY, REQUEST|DUMP
    family, proto, ext, states = struct.unpack_from("=BBBxI", msg, 16)
    assert (family, proto, ext, states) == (socket.AF_INET6, socket.IPPROTO_TCP, 0, 1 << 10)  # TCPF_LISTEN only
    assert msg[24:] == b"\0" * 48  # any socket id


def test_replies_give_each_listening_port_its_inodes():
    replies = [_reply(10, 8080, 111), _reply(10, 8080, 112, socket.AF_INET6), _reply(10, 53, 7),
               _reply(1, 8081, 999),  # an established socket (a kernel that ignored the filter)
               (20, b"\0" * 10),  # too short to be a socket
               (3, b"")]  # not a socket message
    assert sockdiag.parse_sockets(replies) == {8080: {"111", "112"}, 53: {"7"}}


def test_a_dump_the_kernel_cut_short_leaves_the_answer_to_proc(monkeypatch):
    """No tcp_diag (a blacklisted or missing module): the dump ends with -ENOENT in its
    NLMSG_DONE. That is no answer, not "no listening sockets": /proc/net/tcp answers."""
    from kvmnet.host import procs

    failed = struct.pack("=IHHIIi", 20, 3, 2, 1, 0, -2)

    class Socket:
        def __init__(self, *args):
            pass

        def setsockopt(self, *args):
            pass

        def sendto(self, *args):
            pass

        def recv(self, size):
            return failed

        def close(self):
            pass

    monkeypatch.setattr(sockdiag.socket, "socket", Socket)
    assert sockdiag.listening() is None
    read = []
    monkeypatch.setattr(procs, "_read_proc_net", lambda proto, family, out: read.append(proto + family))
    procs.listening()
    assert read == ["tcp", "tcp6", "udp", "udp6"]
