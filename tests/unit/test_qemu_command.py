"""A guest's QEMU command line: engine/qemu_command.build against a stand-in QEMU binary (it only
answers `-netdev help`; no guest is started), the hook paths, and render/qemu's rarer options."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from kvmnet import config
from kvmnet.engine import qemu_command
from kvmnet.errors import InputError
from kvmnet.host import qemu
from kvmnet.render.qemu import HostOffers, guest_args, machine_args

ROOT = Path(__file__).resolve().parents[2]
NAT, USER = ROOT / "topologies" / "nat.toml", ROOT / "topologies" / "user.toml"

MIXED = """
[networks.lan]
mode = "nat"
bridge = "kvmq0"
subnet = "10.90.0.0/24"

[networks.slirp]
mode = "user"
restrict = true
ipv6 = false
smb = "/srv/share"
domainname = "lab.test"

[[networks.slirp.guestfwd]]
server_addr = "10.0.2.100"
server_port = 4321
target = "127.0.0.1:80"

[networks.wire]
mode = "socket"
transport = "udp"
address = "127.0.0.1"
port = 20000

[guests.alpha]
memory = 256
cpus = 4
kernel = "/boot/vmlinuz"
initrd = "/boot/initrd.img"
append = "console=ttyS0 quiet"
disk = "/var/lib/vm/a,b.qcow2"
qemu_args = ["-nographic"]
queues = 4
[[guests.alpha.nics]]
network = "lan"
mac = "52:54:00:00:00:0a"
[[guests.alpha.nics]]
network = "lan"
mac = "52:54:00:00:00:0b"
model = "e1000"
[[guests.alpha.nics]]
network = "slirp"
mac = "52:54:00:00:00:0c"
[[guests.alpha.nics]]
network = "wire"
mac = "52:54:00:00:00:0d"

[guests.beta]
[[guests.beta.nics]]
network = "wire"
mac = "52:54:00:00:00:0e"
model = "e1000"
"""


def executable(path: Path, text: str = "#!/bin/sh\nexit 0\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def fake_qemu(tmp_path: Path, backends=("socket", "tap", "user")) -> Path:
    """Answers `-netdev help` like qemu-system-x86_64; anything else fails loudly."""
    listing = "\\n".join(("Available netdev backend types:",) + tuple(backends))
    return executable(tmp_path / "qemu" / "qemu-system-x86_64",
                      "#!/bin/sh\n"
                      f"if [ \"$1\" = -netdev ] && [ \"$2\" = help ]; then printf '{listing}\\n'; exit 0; fi\n"
                      "echo 'fake qemu: not a guest starter' >&2; exit 99\n")


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No kvmnet-ifup beside the interpreter or on PATH, no vhost-net, no real QEMU, no smbd."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setattr("sys.argv", [str(empty / "python")])
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("KVMNET_QEMU", raising=False)
    monkeypatch.setattr(qemu, "vhost_net", lambda: False)
    monkeypatch.setattr(qemu, "kvm_works", lambda exe: pytest.fail("kvm_works must not run unless asked"))
    return empty


def mixed():
    return config.load_text(MIXED, "mixed.toml")


# ---------------------------------------------------------------- hook paths and offers


def test_hook_paths_prefer_the_interpreters_directory(tmp_path, monkeypatch):
    venv = tmp_path / "venv" / "bin"
    up, down = executable(venv / "kvmnet-ifup"), executable(venv / "kvmnet-ifdown")
    executable(tmp_path / "elsewhere" / "kvmnet-ifup")
    monkeypatch.setenv("PATH", str(tmp_path / "elsewhere"))
    monkeypatch.setattr("sys.argv", [str(venv / "python")])
    assert qemu_command.hook_paths() == (str(up), str(down))


def test_hook_paths_fall_back_to_path_then_to_bare_names(tmp_path, monkeypatch):
    venv = tmp_path / "venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "kvmnet-ifup").write_text("not executable")
    monkeypatch.setattr("sys.argv", [str(venv / "python")])
    on_path = executable(tmp_path / "usr-bin" / "kvmnet-ifup")
    monkeypatch.setenv("PATH", str(tmp_path / "usr-bin"))
    assert qemu_command.hook_paths() == (str(on_path), "kvmnet-ifdown")


def test_offers_vhost_net_only_under_kvm(monkeypatch):
    assert qemu_command.offers("kvm") == HostOffers(vhost_net=False, ifup="kvmnet-ifup", ifdown="kvmnet-ifdown")
    monkeypatch.setattr(qemu, "vhost_net", lambda: True)
    assert qemu_command.offers("kvm").vhost_net is True
    assert qemu_command.offers("tcg").vhost_net is False


# ---------------------------------------------------------------- build


def test_build_puts_machine_network_and_extra_arguments_in_order(tmp_path, monkeypatch):
    exe = fake_qemu(tmp_path)
    monkeypatch.setenv("KVMNET_QEMU", str(exe))
    monkeypatch.setattr(qemu, "vhost_net", lambda: True)
    launch = qemu_command.build(config.load(str(NAT)), "web", ["-snapshot"], accel="kvm")
    assert launch.notes == []
    assert launch.argv == [str(exe), "-accel", "kvm", "-m", "512", "-smp", "1", "-cpu", "host",
                           "-netdev", "tap,id=net0,ifname=kn-nat-web-0,script=no,downscript=no,vhost=on",
                           "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56", "-snapshot"]


def test_build_with_hooks_names_the_hook_scripts_and_tcg_has_no_vhost(tmp_path, monkeypatch, isolated):
    monkeypatch.setenv("KVMNET_QEMU", str(fake_qemu(tmp_path)))
    monkeypatch.setattr(qemu, "vhost_net", lambda: True)
    up, down = executable(isolated / "kvmnet-ifup"), executable(isolated / "kvmnet-ifdown")
    launch = qemu_command.build(config.load(str(NAT)), "web", [], syntax="legacy", hooks=True, accel="tcg")
    assert launch.argv[1:] == ["-accel", "tcg", "-m", "512", "-smp", "1",
                               "-net", "nic,model=virtio,macaddr=52:54:00:12:34:56",
                               "-net", f"tap,ifname=kn-nat-web-0,script={up},downscript={down}"]


@pytest.mark.parametrize("works, why, note, accel", [
    (True, "KVM works", "accelerator: KVM", "kvm"),
    (False, "a KVM test guest failed: no vCPU", "accelerator: TCG (software emulation, slow): a KVM test guest "
                                                "failed: no vCPU", "tcg")])
def test_build_tries_kvm_and_falls_back_to_tcg(works, why, note, accel, tmp_path, monkeypatch):
    exe = fake_qemu(tmp_path)
    monkeypatch.setenv("KVMNET_QEMU", str(exe))
    asked = []
    monkeypatch.setattr(qemu, "kvm_works", lambda e: asked.append(e) or (works, why))
    launch = qemu_command.build(config.load(str(USER)), "devbox", [])
    assert asked == [str(exe)]
    assert launch.notes == [note]
    assert launch.argv[1:3] == ["-accel", accel]
    assert ("-cpu" in launch.argv) is works


def test_build_refuses_an_unknown_guest(tmp_path, monkeypatch):
    monkeypatch.setenv("KVMNET_QEMU", str(fake_qemu(tmp_path)))
    with pytest.raises(InputError) as exc:
        qemu_command.build(config.load(str(NAT)), "db", [], accel="tcg")
    assert str(exc.value) == f"{NAT}: no guest 'db' (guests: web, other)"


def test_build_without_qemu_says_how_to_get_it():
    assert shutil.which("qemu-system-x86_64") is None  # PATH is an empty directory here
    with pytest.raises(InputError) as exc:
        qemu_command.build(config.load(str(USER)), "devbox", [], accel="tcg")
    assert str(exc.value) == ("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86), "
                              "or set KVMNET_QEMU")


# ---------------------------------------------------------------- check_backends


def test_user_mode_needs_a_qemu_built_with_slirp(tmp_path):
    exe = str(fake_qemu(tmp_path, backends=("socket", "tap")))
    with pytest.raises(InputError) as exc:
        qemu_command.check_backends(config.load(str(USER)), "devbox", exe)
    assert str(exc.value) == (f"guests.devbox: network slirp needs `-netdev user`, which {exe} does not offer "
                              "(QEMU built without slirp)")


def test_a_bridged_network_needs_tap(tmp_path):
    exe = str(fake_qemu(tmp_path, backends=("socket", "user")))
    with pytest.raises(InputError) as exc:
        qemu_command.check_backends(config.load(str(NAT)), "web", exe)
    assert str(exc.value) == f"guests.web: network default needs `-netdev tap`, which {exe} does not offer"


def test_smb_without_smbd_is_a_warning(tmp_path, monkeypatch, isolated):
    exe = str(fake_qemu(tmp_path))
    topo = mixed()
    assert qemu_command.check_backends(topo, "alpha", exe) == [
        "warning: networks.slirp.smb is set but smbd is not installed; QEMU will fail to share /srv/share"]
    executable(isolated / "smbd")
    assert qemu_command.check_backends(topo, "alpha", exe) == []


def test_the_real_qemu_if_installed_offers_what_the_shipped_topologies_need(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin:/usr/local/bin")
    exe = shutil.which("qemu-system-x86_64")
    if exe is None:
        pytest.skip("qemu-system-x86_64 is not installed")
    assert {"tap", "socket"} <= qemu.netdev_backends(exe)  # `-netdev help` only: no guest
    assert qemu_command.check_backends(config.load(str(NAT)), "web", exe) == []


# ---------------------------------------------------------------- render/qemu


def test_render_of_tap_queues_user_options_and_a_udp_link():
    topo = mixed()
    offers = HostOffers(vhost_net=True, ifup="/opt/kvmnet/bin/kvmnet-ifup", ifdown="/opt/kvmnet/bin/kvmnet-ifdown")
    hooks = "script=/opt/kvmnet/bin/kvmnet-ifup,downscript=/opt/kvmnet/bin/kvmnet-ifdown"
    assert guest_args(topo, topo.guest("alpha"), "netdev", True, offers) == [
        ["-netdev", f"tap,id=net0,ifname=kn3f8f-alpha-0,{hooks},vhost=on,queues=4",
         "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:00:00:0a,mq=on,vectors=10"],
        ["-netdev", f"tap,id=net1,ifname=kn3f8f-alpha-1,{hooks}",  # e1000: no vhost, no queues
         "-device", "e1000,netdev=net1,mac=52:54:00:00:00:0b"],
        ["-netdev", "user,id=net2,net=10.0.2.0/24,host=10.0.2.2,dns=10.0.2.3,dhcpstart=10.0.2.15,restrict=on,"
                    "domainname=lab.test,smb=/srv/share,ipv6=off,guestfwd=tcp:10.0.2.100:4321-127.0.0.1:80",
         "-device", "virtio-net-pci,netdev=net2,mac=52:54:00:00:00:0c"],
        ["-netdev", "socket,id=net3,udp=127.0.0.1:20001,localaddr=127.0.0.1:20000",
         "-device", "virtio-net-pci,netdev=net3,mac=52:54:00:00:00:0d"]]
    # the other end of the udp link sends to the first guest's port and listens on its own
    assert guest_args(topo, topo.guest("beta"), "legacy") == [
        ["-net", "nic,model=e1000,macaddr=52:54:00:00:00:0e",
         "-net", "socket,udp=127.0.0.1:20000,localaddr=127.0.0.1:20001"]]


def test_ipv6_on_renders_as_on_with_ipv4_kept_on():
    topo = config.load_text('[networks.s]\nmode = "user"\nipv6 = true\n[guests.g]\n[[guests.g.nics]]\nnetwork = "s"\n'
                            'mac = "52:54:00:00:00:01"\n', "v6.toml")
    assert guest_args(topo, topo.guest("g"))[0][1] == ("user,id=net0,net=10.0.2.0/24,host=10.0.2.2,dns=10.0.2.3,"
                                                       "dhcpstart=10.0.2.15,ipv4=on,ipv6=on")


def test_machine_args_boot_media_and_extra_arguments():
    topo = mixed()
    assert machine_args(topo.guest("alpha"), "kvm") == [
        "-accel", "kvm", "-m", "256", "-smp", "4", "-cpu", "host", "-kernel", "/boot/vmlinuz",
        "-initrd", "/boot/initrd.img", "-append", "console=ttyS0 quiet",
        "-drive", "file=/var/lib/vm/a,,b.qcow2,if=virtio", "-nographic"]
    assert machine_args(topo.guest("beta"), "tcg") == ["-accel", "tcg", "-m", "512", "-smp", "1"]
