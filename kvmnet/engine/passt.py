"""One passt per guest NIC on a passt network: started before QEMU (`kvmnet run`, or `kvmnet
passt start` for people who launch QEMU themselves), stopped after it."""

from __future__ import annotations

from .. import naming
from ..errors import HostError
from ..host import passt as host_passt
from ..model import Topology
from ..render import passt as render


def needed(topo: Topology, guest: str) -> bool:
    return any(topo.network(n.network).mode == "passt" for n in topo.guest(guest).nics)


def start(topo: Topology, guest: str, state_root: str) -> list[tuple[str, int]]:
    """(socket, pid) for each of the guest's passt NICs; on a failure the ones this call
    started are stopped again before HostError."""
    exe = host_passt.binary()
    nics = render.nics(topo, guest, state_root)
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
    stopped = [pid for nic in render.nics(topo, guest, state_root)
               for pid in host_passt.stop(exe, nic.socket, nic.directory)]
    host_passt.remove_if_empty(state_root, topo.name)
    return stopped
