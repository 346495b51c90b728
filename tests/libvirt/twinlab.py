"""The twin lab: the same libvirt network XML started by a private libvirtd in one host namespace
and, imported by `kvmnet import libvirt`, applied by kvmnet in the other; twin clients plugged
into both; each scenario's probes run on both sides and returned as pairs."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from helpers.netns import KVMNET, ROOT, Netns

from libvirtd import Libvirtd
from twins import Side, lease_all

DATA = Path(__file__).resolve().parent / "data"


def import_xml(stems: list[str], out: Path) -> Path:
    """kvmnet's topology for the libvirt networks `stems` (data/STEM.xml), through the importer;
    several networks are joined into one topology file (the first one's name)."""
    texts = []
    for stem in stems:
        target = out.parent / f"{stem}.imported.toml"
        res = subprocess.run([*KVMNET, "import", "libvirt", str(DATA / f"{stem}.xml"), "-o", str(target)],
                             capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert res.returncode == 0, res.stderr
        texts.append(target.read_text())
    # every imported table is [networks.NAME...] or [guests.NAME...]: only `name =` is per file
    body = [t if i == 0 else "\n".join(l for l in t.splitlines() if not l.startswith("name = "))
            for i, t in enumerate(texts)]
    out.write_text("\n".join(body) + "\n")
    return out


class TwinLab:
    def __init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="kn-twin-"))
        self.lv_host, self.kv_host = Netns("kn-lh"), Netns("kn-kh")
        self.daemon = Libvirtd(self.lv_host)
        self.sides: list[Side] = []
        self.results: dict[str, dict] = {}
        self.closed = False
        try:
            self.libvirt = self._side("libvirt", self.lv_host)
            self.kvmnet = self._side("kvmnet", self.kv_host)
            self.daemon.start()
            # after the start: what libvirtd does when it starts is not what a network leaves
            self.baseline = {s.label: s.host.snapshot() for s in self.sides}
        except BaseException:
            self.close()
            raise

    def _side(self, label: str, host: Netns) -> Side:
        side = Side(label, host)
        self.sides.append(side)
        return side

    # --------------------------------------------------------------- networks on both sides

    def start(self, libvirt_nets: list[str], kvmnet_topologies: list[list[str]]) -> list[Path]:
        """libvirt: `virsh net-create` of each XML; kvmnet: `kvmnet apply` of each topology
        (a list of XML stems imported into one file). Returns the topology files."""
        for stem in libvirt_nets:
            self.daemon.virsh("net-create", str(DATA / f"{stem}.xml"))
        files = [import_xml(stems, self.tmp / f"{'+'.join(stems)}.toml") for stems in kvmnet_topologies]
        for f in files:
            res = self.kv_host.kvmnet("apply", str(f))
            assert res.returncode == 0, res.stdout + res.stderr
        return files

    def stop(self, libvirt_names: list[str], files: list[Path]) -> None:
        for name in libvirt_names:
            self.daemon.virsh("net-destroy", name, check=False)
        for f in files:
            res = self.kv_host.kvmnet("destroy", str(f))
            assert res.returncode == 0, res.stdout + res.stderr
        for side in self.sides:
            side.unplug_all()

    def plug(self, clients: dict[str, tuple[str, str]]) -> tuple[dict, dict]:
        """Twin clients {name: (mac, bridge)} on both sides, leased in parallel."""
        made = [{n: side.plug(n, mac, br) for n, (mac, br) in clients.items()} for side in (self.libvirt, self.kvmnet)]
        lease_all([c for side in made for c in side.values()])
        return made[0], made[1]

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.daemon.stop()
        for side in self.sides:
            side.close()
        for ns in (self.lv_host, self.kv_host):
            ns.delete()
        subprocess.run(["rm", "-rf", str(self.tmp)], check=False)
