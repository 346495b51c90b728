"""One passt per guest NIC on a passt network: started before QEMU (`kvmnet run`, or `kvmnet
passt start` for people who launch QEMU themselves), stopped after it.

Each passt started is recorded (write-ahead, under the state lock) with the step that stops it,
as everything kvmnet leaves running is: `kvmnet destroy` stops it even if QEMU is still running
or `kvmnet passt stop` was never called (plan/passt.py)."""

from __future__ import annotations

from .. import naming
from ..errors import HostError
from ..host import passt as host_passt
from ..model import Topology
from ..render import passt as render
from . import record as records, statedir
from .plan import passt as passt_plan


def needed(topo: Topology, guest: str) -> bool:
    return any(topo.network(n.network).mode == "passt" for n in topo.guest(guest).nics)


def start(topo: Topology, guest: str, state_root: str) -> list[tuple[str, int]]:
    """(socket, pid) for each of the guest's passt NICs; on a failure the ones this call
    started are stopped again (and their record entries dropped) before HostError."""
    exe = host_passt.binary()
    nics = render.nics(topo, guest, state_root)
    with statedir.locked(state_root):
        record = records.load(state_root, topo.name)
        new = [nic for nic in nics
               if record.add(passt_plan.key(guest, nic.index),
                             passt_plan.stop_step(guest, nic.index, nic.directory).to_json())]
        record.file = record.file or topo.path
        records.save(state_root, record)  # before any passt starts: destroy can always stop it
        try:
            return _start_each(topo, guest, state_root, exe, nics)
        except HostError:
            _forget(state_root, topo.name, [n for n in new if not host_passt.running(exe, n.socket)])
            raise


def _start_each(topo: Topology, guest: str, state_root: str, exe: str, nics) -> list[tuple[str, int]]:
    started, out = [], []
    for nic in nics:
        try:
            host_passt.prepare(state_root, naming.state_dir_for(topo.name, state_root), nic.directory)
            already = host_passt.running(exe, nic.socket)
            pid = host_passt.start(render.argv(topo, nic, exe), nic.socket, nic.directory)
        except (HostError, OSError) as exc:
            for done in started:
                host_passt.stop(exe, done.socket, done.directory)
            what = exc if isinstance(exc, HostError) else f"{exc.strerror}: {exc.filename}"
            raise HostError(f"guests.{guest}.nics[{nic.index}] (network {nic.network}): {what}") from None
        if not already:
            started.append(nic)
        out.append((nic.socket, pid))
    return out


def stop(topo: Topology, guest: str, state_root: str) -> list[int]:
    """The pids stopped (none: nothing was running)."""
    exe = host_passt.binary()
    nics = render.nics(topo, guest, state_root)
    with statedir.locked(state_root):
        stopped = [pid for nic in nics for pid in host_passt.stop(exe, nic.socket, nic.directory)]
        _forget(state_root, topo.name, nics)
        host_passt.remove_if_empty(state_root, topo.name)
    return stopped


def _forget(state_root: str, topology: str, nics) -> None:
    """Drop these NICs' passts from the record (a record left with nothing in it goes)."""
    record = records.load(state_root, topology)
    keys = {passt_plan.key(nic.guest, nic.index) for nic in nics}
    if keys & record.keys():
        record.drop_all(keys)
        records.save(state_root, record)
