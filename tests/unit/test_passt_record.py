"""A passt kvmnet starts (`kvmnet run`, `kvmnet passt start`) is recorded with the step that
stops it: apply leaves it running while the file has its NIC and stops it once the file drops
the NIC, destroy stops it, and the record's step may name only that NIC's own directory."""

from __future__ import annotations

import json

import pytest
from helpers.configtext import load
from helpers.fakehost import FakeHost

from kvmnet import engine, naming
from kvmnet.engine import passt as engine_passt, record as records
from kvmnet.engine.record import CorruptRecord
from kvmnet.host import passt as host_passt

BOTH = """\
[networks.lan]
mode = "isolated"
bridge = "kvlan0"
[networks.pn]
mode = "passt"
[guests.web]
[[guests.web.nics]]
network = "lan"
[[guests.web.nics]]
network = "pn"
"""


@pytest.fixture
def started(monkeypatch, tmp_path):
    """engine.passt.start with the process part faked: what it records is real; returns the
    fake host, which knows the passt as running."""
    fake = FakeHost()
    monkeypatch.setattr(host_passt, "binary", lambda: "/usr/bin/passt")
    monkeypatch.setattr(host_passt, "prepare", lambda *a: None)
    monkeypatch.setattr(host_passt, "running", lambda exe, sock: [4321] if sock.rsplit("/", 1)[0] in fake.passts else [])

    def start(argv, socket, directory):
        fake.passts.add(directory)
        return 4321
    monkeypatch.setattr(host_passt, "start", start)
    return fake


def _passt_dir(root) -> str:
    return naming.passt_dir("t", "web", 1, str(root))


def test_apply_keeps_a_running_passt_and_destroy_stops_it(started, tmp_path):
    topo = load(BOTH)
    engine.apply(topo, str(tmp_path), host=started)
    assert engine_passt.start(topo, "web", str(tmp_path)) == [(_passt_dir(tmp_path) + "/sock", 4321)]
    assert ["passt:web:1", {"op": "passt.stop", "args": {"guest": "web", "nic": 1, "dir": _passt_dir(tmp_path)}}] \
        in records.load(str(tmp_path), "t").entries
    started.ran.clear()
    assert engine.apply(topo, str(tmp_path), host=started).actions == []  # wanted as it is
    assert started.passts == {_passt_dir(tmp_path)}
    result = engine.destroy("t", str(tmp_path), host=started)
    assert result.actions[0].do.describe() == "stop passt for guest web's NIC 1"  # newest first
    assert started.passts == set() and not (tmp_path / "t").exists()


def test_a_passt_whose_nic_the_file_dropped_is_stopped_by_apply(started, tmp_path):
    engine_passt.start(load(BOTH), "web", str(tmp_path))
    result = engine.apply(load(BOTH.replace('[[guests.web.nics]]\nnetwork = "pn"\n', "")), str(tmp_path), host=started)
    assert [a.do.describe() for a in result.actions if a.kind == "remove"] == ["stop passt for guest web's NIC 1"]
    assert started.passts == set() and "passt:web:1" not in records.load(str(tmp_path), "t").keys()


def test_passt_stop_forgets_it_and_a_record_with_nothing_else_goes(started, tmp_path):
    topo = load(BOTH.replace('mode = "isolated"', 'mode = "user"').replace('bridge = "kvlan0"\n', ""))
    engine_passt.start(topo, "web", str(tmp_path))
    assert (tmp_path / "t" / "state.json").exists()
    engine_passt.stop(topo, "web", str(tmp_path))
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("directory", ["/etc", "{root}/t/passt-kn-t-db-1", "{root}/t/passt-kn-t-web-1/.."])
def test_a_recorded_passt_stop_may_name_only_its_nics_own_directory(tmp_path, directory):
    (tmp_path / "t").mkdir(mode=0o700)
    step = {"op": "passt.stop", "args": {"guest": "web", "nic": 1, "dir": directory.format(root=tmp_path)}}
    (tmp_path / "t" / "state.json").write_text(json.dumps({"version": 1, "topology": "t", "entries": [["passt:web:1", step]]}))
    with pytest.raises(CorruptRecord, match=r"passt\.stop: dir: .* is not .*/t/passt-kn-t-web-1 \(this guest NIC's passt directory\)"):
        records.load(str(tmp_path), "t")
