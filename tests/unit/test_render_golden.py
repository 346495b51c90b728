"""Golden files for generated configuration: kvmnet's nft table and each dnsmasq conf, for
every shipped topology and the test topologies. Regenerate with KVMNET_UPDATE_GOLDEN=1."""

import os
import shlex
from pathlib import Path

import pytest

from kvmnet import config, naming
from kvmnet.engine.plan.dnsmasq import networks as dnsmasq_networks
from kvmnet.errors import InputError
from kvmnet.render.qemu_tuning import guest_wide
from kvmnet.render import dnsmasq, nft, qemu

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "data" / "render"
SOURCES = sorted(ROOT.glob("topologies/*.toml")) + sorted(ROOT.glob("tests/data/topologies/*.toml"))


def rendered(path: Path) -> dict[str, str]:
    topo = config.load_text(path.read_text(), path.name)
    out = {}
    if nft.needs_table(topo):
        out["nft.txt"] = nft.render(topo, naming.nft_table(topo.name)).text
    for net in dnsmasq_networks(topo):
        paths = naming.dnsmasq_paths(f"/run/kvmnet/{topo.name}", net.name)
        out[f"dnsmasq-{net.name}.conf"] = dnsmasq.render(topo, net, paths, "nobody")
    for guest in topo.guests:
        lines = []
        state = f"/run/kvmnet/{topo.name}"  # where a vde network's switch socket is
        for syntax, hooks, offers in (("netdev", False, qemu.HostOffers(state_dir=state)),
                                      ("netdev", True, qemu.HostOffers(vhost_net=True, state_dir=state)),
                                      ("legacy", True, qemu.HostOffers(state_dir=state))):
            lines.append(f"# --syntax {syntax}{' --hooks' if hooks else ''}{' (vhost-net present)' if offers.vhost_net else ''}")
            try:
                lines += [shlex.join(f) for f in qemu.guest_args(topo, guest, syntax, hooks, offers)]
                lines += [shlex.join(guest_wide(guest))] if guest_wide(guest) else []  # -nic none
            except InputError as exc:
                lines.append(f"error: {exc}")
        out[f"qemu-{guest.name}.txt"] = "\n".join(lines) + "\n"
    return out


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_render_matches_golden(source):
    case = GOLDEN / source.stem
    for name, text in rendered(source).items():
        if os.environ.get("KVMNET_UPDATE_GOLDEN"):
            case.mkdir(parents=True, exist_ok=True)
            (case / name).write_text(text)
        assert text == (case / name).read_text(), f"{source.stem}/{name} differs from its golden file"
    expected = set(rendered(source))
    present = {p.name for p in case.iterdir()} if case.exists() else set()
    assert present == expected, "stale or missing golden files"
