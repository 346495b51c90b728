"""The seed's remaining QEMU options without root: multi-queue taps, tap tuning, `-nic none`,
packet capture, qemu-bridge-helper and VDE, against the fake host and the renderer."""

from __future__ import annotations

import json
import textwrap

from helpers.fakehost import FakeHost

from kvmnet import config, engine
from kvmnet.engine.steps import Step
from kvmnet.engine.stepschema import Where, check_step
from kvmnet.render.qemu_tuning import guest_wide

NAT = """\
[networks.default]
mode = "nat"
bridge = "virbr0"
subnet = "192.168.122.0/24"
"""


def load(tmp_path, guests: str, name: str = "seedq"):
    path = tmp_path / f"{name}.toml"
    path.write_text(NAT + textwrap.dedent(guests))
    return config.load(str(path))


def test_a_guest_with_queues_gets_multi_queue_taps_only_for_virtio(tmp_path):
    topo = load(tmp_path, """\
        [guests.mq]
        queues = 2
        [[guests.mq.nics]]
        network = "default"
        [[guests.mq.nics]]
        network = "default"
        model = "e1000"
        [guests.one]
        queues = 1
        [[guests.one.nics]]
        network = "default"
        """)
    host = FakeHost()
    engine.apply(topo, str(tmp_path / "state"), host=host)
    taps = {s.args["name"]: s.args.get("multi_queue", False) for s in host.ran if s.op == "tap.add"}
    assert taps == {"kn-mq-0": True, "kn-mq-1": False, "kn-one-0": False}
    assert host.links_["kn-mq-0"]["multi_queue"] is True


def test_multi_queue_tap_step_in_words_as_a_command_and_in_the_schema():
    step = Step("tap.add", {"name": "kn-mq-0", "master": "virbr0", "mac": None, "mtu": None, "group": 7,
                            "multi_queue": True})
    assert step.describe() == "create multi-queue tap kn-mq-0 on bridge virbr0"
    assert "ip tuntap add dev kn-mq-0 mode tap vnet_hdr multi_queue &&" in step.command()
    check_step(step.to_json(), Where("seedq", "/run/kvmnet/seedq"))  # no SchemaError


def test_a_guest_without_nics_gets_nic_none(tmp_path):
    from click.testing import CliRunner
    from kvmnet.cli import main
    path = tmp_path / "quiet.toml"
    path.write_text('[guests.quiet]\nmemory = 64\n')
    res = CliRunner().invoke(main, ["qemu-args", str(path), "quiet"])
    assert (res.exit_code, res.output) == (0, "-nic none\n")
    res = CliRunner().invoke(main, ["qemu-args", "--json", str(path), "quiet"])
    assert json.loads(res.output)["guest_args"] == ["-nic", "none"]
    topo = config.load(str(path))
    assert guest_wide(topo.guest("quiet")) == ["-nic", "none"]
    assert guest_wide(load(tmp_path, '[guests.g]\n[[guests.g.nics]]\nnetwork = "default"\n').guest("g")) == []
