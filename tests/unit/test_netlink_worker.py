"""The netlink worker (pyroute2 on the other core, host/netlink_worker.py) and the guess that
starts it (cli_prestart.py). The worker is a real forked child; what it runs is the parent's
netlink_pyroute2.request, replaced here before the fork (so no root, no kernel change)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kvmnet import cli_prestart
from kvmnet.engine import statedir
from kvmnet.host import netlink_pyroute2, netlink_worker
from kvmnet.host.netlink_error import NetlinkError

ROOT = Path(__file__).resolve().parents[2]
ROUTED = netlink_pyroute2.request  # the real one: to the worker when one runs, else in-process


@pytest.fixture
def worker(monkeypatch, tmp_path):
    """A worker whose requests append to a file (the child's memory is its own) and fail on cue."""
    log = tmp_path / "requests"

    def request(op, what, command, **fields):
        with open(log, "a") as f:
            f.write(f"{os.getpid()} {op} {what} {command} {sorted(fields.items())}\n")
        if fields.get("fail") == "refused":
            raise NetlinkError(errno.EEXIST, op)
        if fields.get("fail") == "bug":
            raise KeyError("unknown attribute")
        if fields.get("fail") == "die":
            os._exit(1)

    assert not netlink_worker.running()  # nothing else in this process started one (kvmnet/entry.py)
    monkeypatch.setattr(netlink_pyroute2, "request", request)
    monkeypatch.setattr(netlink_pyroute2, "warm", lambda: None)
    netlink_worker.start()
    yield log
    netlink_worker.stop()


def test_requests_run_in_the_child_and_its_answers_come_back(worker):
    pid = netlink_worker._child["pid"]
    assert netlink_worker.request("add bridge br0", "link", "add", {"ifname": "br0", "kind": "bridge"})
    with pytest.raises(NetlinkError) as refused:
        netlink_worker.request("add addr", "addr", "add", {"fail": "refused"})
    assert (refused.value.errno, refused.value.op) == (errno.EEXIST, "add addr")
    with pytest.raises(NetlinkError) as bug:
        netlink_worker.request("set link", "link", "set", {"fail": "bug"})
    assert bug.value.errno == errno.EIO and "KeyError" in str(bug.value)
    lines = worker.read_text().splitlines()
    assert [l.split()[0] for l in lines] == [str(pid)] * 3 and pid != os.getpid()
    assert "[('ifname', 'br0'), ('kind', 'bridge')]" in lines[0]
    assert netlink_worker.running()  # a refusal is an answer, not a failure of the worker


def test_a_value_marshal_cannot_carry_is_made_in_process(worker, monkeypatch):
    made = []
    monkeypatch.setattr(netlink_pyroute2, "_open", lambda: made.append("opened") or _Recorder(made))
    ROUTED("odd", "link", "set", index=1, attrs={1, 2}.__iter__())
    assert not netlink_worker.running() and made[0] == "opened"


class _Recorder:
    def __init__(self, made):
        self.made = made

    def link(self, command, **fields):
        self.made.append(command)


def test_a_worker_gone_while_idle_leaves_the_request_to_this_process(worker, monkeypatch):
    pid = netlink_worker._child["pid"]
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    made = []
    monkeypatch.setattr(netlink_pyroute2, "_open", lambda: made.append("opened") or _Recorder(made))
    ROUTED("set link", "link", "set", index=7)  # never reached it: made here instead
    assert made == ["opened", "set"] and not netlink_worker.running()


def test_a_worker_lost_during_a_request_is_that_requests_error(worker):
    with pytest.raises(NetlinkError) as lost:
        netlink_worker.request("add route", "route", "add", {"fail": "die"})
    assert lost.value.errno == errno.EIO and "worker ended" in str(lost.value)
    assert not netlink_worker.running()


def test_an_interrupted_wait_stops_the_worker_so_no_answer_is_misread(worker, monkeypatch):
    pid = netlink_worker._child["pid"]
    netlink_worker.request("first", "link", "set", {})  # ready, and one answer read
    monkeypatch.setattr(netlink_worker, "_receive", lambda fd: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        netlink_worker.request("second", "link", "set", {})
    assert not netlink_worker.running() and not _alive(pid)  # killed and reaped


# the parent starts a worker (still loading pyroute2: 30 s here) and is killed: the worker must
# not outlive it, and must not hold the parent's stdout
ORPHAN = """
import os, sys, time
from kvmnet.host import netlink_pyroute2, netlink_worker
netlink_pyroute2.warm = lambda: time.sleep(30)
netlink_worker.start()
print(netlink_worker._child["pid"], flush=True)
time.sleep(0.3)  # the child has set its parent-death signal
os.kill(os.getpid(), 9)
"""


def test_the_worker_dies_with_its_parent_even_a_killed_one():
    res = subprocess.run([sys.executable, "-c", ORPHAN], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                         capture_output=True, text=True, timeout=20)  # returns: the worker holds no stdout
    assert res.returncode == -9
    child = int(res.stdout.split()[0])
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(child)  # gone at once, not after its 30 s of loading


# stdin and stdout closed when the command starts: the pipes must not take fds 0 and 1
CLOSED_STDIO = """
import os, sys
os.close(0)
os.close(1)
from kvmnet.host import netlink_pyroute2, netlink_worker
calls = []
netlink_pyroute2.warm = lambda: None
netlink_pyroute2.request = lambda op, what, command, **f: None
netlink_worker.start()
ok = netlink_worker.request("add bridge br0", "link", "add", {})
print(ok, netlink_worker.running(), file=sys.stderr)
"""


def test_a_command_started_with_stdin_and_stdout_closed_still_reaches_its_worker():
    res = subprocess.run([sys.executable, "-c", CLOSED_STDIO], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                         capture_output=True, text=True, timeout=20)
    assert res.returncode == 0 and res.stderr.split() == ["True", "True"], res.stderr


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("argv, want", [
    (["kvmnet", "apply", "F"], ("apply", None, ["F"])),
    (["kvmnet", "--state-dir", "/s", "apply", "--firewall", "iptables", "F"], ("apply", "/s", ["--firewall", "iptables", "F"])),
    (["kvmnet", "--state-dir=/s", "--qemu-conf-dir", "/q", "destroy", "F"], ("destroy", "/s", ["F"])),
    (["kvmnet", "--version"], (None, None, [])),
])
def test_the_command_line_is_read_for_verb_state_dir_and_arguments(argv, want):
    assert cli_prestart._split(argv[1:]) == want


@pytest.fixture
def starts(monkeypatch):
    started = []
    monkeypatch.setattr(netlink_worker, "start", lambda: started.append(True))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.delenv("KVMNET_NETLINK_WORKER", raising=False)
    return started


def test_apply_starts_a_worker_for_a_file_never_applied_here_only(starts, tmp_path):
    state, topo = tmp_path / "state", tmp_path / "nat.toml"
    state.mkdir()
    topo.write_text("x")
    argv = ["kvmnet", "--state-dir", str(state), "apply", str(topo)]
    cli_prestart.maybe_start(argv)
    assert starts == [True]  # never applied here
    kept = Path(statedir.topology_cache(str(state), str(topo)))
    kept.write_text("{}")
    os.utime(topo, ns=(1, 10**18))
    os.utime(kept, ns=(1, 2 * 10**18))
    cli_prestart.maybe_start(argv)
    assert starts == [True]  # unchanged since its last apply: likely nothing to do
    os.utime(topo, ns=(1, 3 * 10**18))
    cli_prestart.maybe_start(argv)
    assert starts == [True]  # edited since: most likely guests, which need no pyroute2
    kept.unlink()
    cli_prestart.maybe_start(argv)
    assert starts == [True, True]  # its copy is gone: as never applied


@pytest.mark.parametrize("argv, env, root, want", [
    (["destroy", "{topo}"], {}, True, 1),
    (["apply", "--dry-run", "{topo}"], {}, True, 0),
    (["apply", "--help"], {}, True, 0),
    (["plan", "{topo}"], {}, True, 0),
    (["apply", "{topo}"], {"KVMNET_NETLINK_WORKER": "0"}, True, 0),
    (["apply", "{topo}"], {}, False, 0),
    (["apply", "missing.toml"], {}, True, 0),
])
def test_other_commands_start_none(starts, monkeypatch, tmp_path, argv, env, root, want):
    topo = tmp_path / "t.toml"
    topo.write_text("x")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(os, "geteuid", lambda: 0 if root else 1000)
    cli_prestart.maybe_start(["kvmnet", "--state-dir", str(tmp_path), *[a.format(topo=topo) for a in argv]])
    assert len(starts) == want


def test_pyroute2_loads_at_the_lowest_priority_and_requests_run_at_the_parents(monkeypatch, tmp_path):
    seen = tmp_path / "priority"

    def request(op, what, command, **fields):
        seen.write_text(seen.read_text() + f" serve {os.getpriority(os.PRIO_PROCESS, 0)}")

    monkeypatch.setattr(netlink_pyroute2, "request", request)
    monkeypatch.setattr(netlink_pyroute2, "warm", lambda: seen.write_text(f"warm {os.getpriority(os.PRIO_PROCESS, 0)}"))
    netlink_worker.start()
    try:
        netlink_worker.request("add bridge br0", "link", "add", {"ifname": "br0"})
    finally:
        netlink_worker.stop()
    parent = os.getpriority(os.PRIO_PROCESS, 0)
    expected_serve = parent if os.geteuid() == 0 else 19  # (only root may raise it back)
    assert seen.read_text() == f"warm 19 serve {expected_serve}"
