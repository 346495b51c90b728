"""host/vxlan.py reads iproute2's JSON: output it cannot read is a HostError naming the command
(the CLI's exit 1 with a message), never a ValueError's traceback."""

import subprocess

import pytest

from kvmnet.errors import HostError
from kvmnet.host import vxlan


def _tool_says(monkeypatch, out: str, code: int = 0) -> None:
    def run(argv, **kw):
        return subprocess.CompletedProcess(argv, code, out, "")
    monkeypatch.setattr(vxlan.subprocess, "run", run)


@pytest.mark.parametrize("out", ['[{"ifname": "vx', '{"not": "a list"}', '["text"]', "[" * 100000])
def test_unreadable_output_is_a_host_error_naming_the_command(monkeypatch, out):
    _tool_says(monkeypatch, out)
    with pytest.raises(HostError, match=r"^ip -j -d link show dev vx0: output is not"):
        vxlan.observe(["vx0"])
    with pytest.raises(HostError, match=r"^bridge -j fdb show dev vx0: output is not"):
        vxlan.remote_macs("vx0")


def test_an_empty_answer_is_no_device_and_no_entries(monkeypatch):
    _tool_says(monkeypatch, "", code=1)
    assert vxlan.observe(["vx0"]) == {"vxlan": {}, "fdb": {}}
    assert vxlan.remote_macs("vx0") == []


def test_odd_but_wellformed_fields_are_read_as_absent(monkeypatch):
    link = '[{"ifname": "vx0", "linkinfo": {"info_kind": "vxlan", "info_data": "?"}}]'
    answers = iter([link, "[]", '[{"mac": "00:00:00:00:00:00", "dst": "192.0.2.2"}, {"dst": "192.0.2.3"}]'])
    monkeypatch.setattr(vxlan.subprocess, "run", lambda argv, **kw: subprocess.CompletedProcess(argv, 0, next(answers), ""))
    assert vxlan.observe(["vx0"]) == {
        "vxlan": {"vx0": {"vni": None, "local": None, "port": None, "learning": False, "port_learning": None}},
        "fdb": {"vx0": ["192.0.2.2"]}}
    _tool_says(monkeypatch, '[{"dst": "192.0.2.3"}, {"mac": "52:54:00:00:00:01", "dst": "192.0.2.3", "flags": ["extern_learn"]}]')
    assert vxlan.remote_macs("vx0") == [{"mac": "52:54:00:00:00:01", "dst": "192.0.2.3", "extern_learn": True}]


def test_fields_of_another_type_are_no_entry(monkeypatch):
    _tool_says(monkeypatch, '[{"mac": "00:00:00:00:00:00", "dst": 7}, {"mac": "52:54:00:00:00:01", "dst": "192.0.2.3", '
                            '"flags": null}, {"mac": null, "dst": "192.0.2.4"}, {"mac": "52:54:00:00:00:02", "dst": "192.0.2.4", "flags": 3}]')
    assert vxlan._flooded("vx0") == []
    assert vxlan.remote_macs("vx0") == [{"mac": "52:54:00:00:00:01", "dst": "192.0.2.3", "extern_learn": False},
                                        {"mac": "52:54:00:00:00:02", "dst": "192.0.2.4", "extern_learn": False}]
