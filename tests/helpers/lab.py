"""Labs with real guests: NatLab's namespaces ("host" running kvmnet, "wan" with a web server)
plus tiny QEMU guests (labkit.guest) booted inside "host" with the arguments `kvmnet qemu-args`
prints. Guests boot in parallel; everything is torn down even when a test fails, and the
guests' consoles, the plan and dnsmasq's configuration are kept under artifacts/ on failure."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from labkit.guest import Guest

from .natlab import NatLab
from .netns import ROOT

ARTIFACTS = ROOT / "artifacts"


def failed(request) -> bool:
    """Did the test behind this fixture request fail (tests/conftest.py records the reports)?"""
    rep = getattr(request.node, "rep_call", None)
    return rep is None or rep.failed


class Lab(NatLab):
    def __init__(self, topology: Path, backend: str = "nftables"):
        super().__init__(topology, backend)
        self.guests: dict[str, Guest] = {}

    def qemu_args(self, guest: str, *flags: str) -> list[str]:
        res = self.kvmnet("qemu-args", "--json", *flags, str(self.topology), guest)
        assert res.returncode == 0, res.stderr
        out = json.loads(res.stdout)
        return [word for nic in out["nics"] for word in nic["args"]] + out.get("guest_args", [])

    def boot(self, *names: str, net_args: dict[str, list[str]] | None = None,
             append: dict[str, str] | None = None, **guest_kw) -> list[Guest]:
        """Start every guest first, then wait for each: boots overlap."""
        started = []
        for name in names:
            args = (net_args or {}).get(name) or self.qemu_args(name)
            guest = Guest(name, args, netns=self.host.name, append=(append or {}).get(name, ""), **guest_kw)
            self.guests[name] = guest.start()
            started.append(guest)
        for guest in started:
            guest.wait_ready()
        return started

    LAN_HOST = "10.61.0.1"

    def lan_behind_uplink(self, tmp: Path, router: bool = False):
        """A LAN namespace at the far end of the host's uplink eth0 (a veth), with its own
        dnsmasq handing out 10.61.0.100-150 (its files in `tmp`; `router`: itself as the router)."""
        lan = self._ns("kn-lan")
        self.host.sh(f"ip link add eth0 type veth peer name lan0 netns {lan.name} && ip link set eth0 up")
        lan.sh(f"ip addr add {self.LAN_HOST}/24 dev lan0 && ip link set lan0 up")
        tmp.chmod(0o777)  # dnsmasq drops to nobody before it writes its lease file
        lan.run("dnsmasq", "--conf-file=/dev/null", "--port=0", "--interface=lan0", "--bind-interfaces", "--no-ping",
                f"--pid-file={tmp}/lan.pid", f"--dhcp-leasefile={tmp}/lan.leases",
                "--dhcp-range=10.61.0.100,10.61.0.150,1h",
                *([f"--dhcp-option=option:router,{self.LAN_HOST}"] if router else []))
        return lan

    def keep_artifacts(self, test_name: str) -> Path:
        out = ARTIFACTS / test_name.replace("/", "_")
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        for name, guest in self.guests.items():
            (out / f"console-{name}.log").write_text(guest.console)
        (out / "plan.txt").write_text(self.kvmnet("plan", str(self.topology)).stdout)
        for conf in self.host.state_dir.rglob("dnsmasq-*"):
            if conf.is_file():  # per-network dnsmasq directories match too
                shutil.copy(conf, out / conf.name)
        return out

    def close(self, failed_test: str | None = None) -> None:
        try:
            if failed_test:
                self.keep_artifacts(failed_test)
        finally:
            for guest in self.guests.values():
                guest.stop(poweroff=False)
            super().close()
