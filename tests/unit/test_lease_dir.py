"""DHCP leases live where they survive a reboot (/var/lib/kvmnet for the default state dir under
/run), and a shutdown's destroy keeps them while a plain destroy leaves no trace."""

import pytest

from kvmnet import naming


@pytest.mark.parametrize("state_dir,leases", [
    ("/run/kvmnet/nat", "/var/lib/kvmnet/nat/dnsmasq-default.leases"),
    ("/run/kvmnet/netns/lab/nat", "/var/lib/kvmnet/netns/lab/nat/dnsmasq-default.leases"),
    ("/tmp/s/nat", "/tmp/s/nat/dnsmasq-default.leases"),  # an explicit --state-dir keeps them beside it
])
def test_where_leases_live(monkeypatch, state_dir, leases):
    monkeypatch.delenv("KVMNET_LIB_DIR", raising=False)
    assert naming.dnsmasq_paths(state_dir, "default")["leases"] == leases
    assert naming.dnsmasq_paths(state_dir, "default")["conf"] == f"{state_dir}/dnsmasq-default.conf"


def test_kvmnet_lib_dir_moves_the_root(monkeypatch):
    monkeypatch.setenv("KVMNET_LIB_DIR", "/srv/kvmnet-lib")
    assert naming.dnsmasq_paths("/tmp/s/nat", "lab")["leases"] == "/srv/kvmnet-lib/nat/dnsmasq-lab.leases"


def test_destroy_keeps_leases_only_when_asked(tmp_path, monkeypatch):
    from helpers.fakehost import FakeHost
    from kvmnet import config, engine
    from pathlib import Path
    monkeypatch.setenv("KVMNET_LIB_DIR", str(tmp_path / "lib"))
    topo = config.load(str(Path(__file__).resolve().parents[2] / "topologies" / "nat.toml"))
    for keep in (True, False):
        host = FakeHost()
        engine.apply(topo, str(tmp_path / "state"), host=host)
        stops = []
        host_run = host.run
        host.run = lambda step: (stops.append(step) if step.op == "dnsmasq.stop" else None, host_run(step))[1]
        engine.destroy(topo.name, str(tmp_path / "state"), host=host, keep_leases=keep)
        assert [s.args["leases"] for s in stops] == [None if keep else str(tmp_path / "lib/nat/dnsmasq-default.leases")]
