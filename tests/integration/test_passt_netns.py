"""`kvmnet run` supervises a guest's passt: started before QEMU (QEMU can connect to its
socket), stopped once QEMU exits, its directory gone; the state dir stays root's."""

import os
import shutil
import signal
import stat
import tempfile

import pytest

from helpers.netns import Netns, snapshot_diff

pytestmark = pytest.mark.root

TOPOLOGY = """\
[networks.pn]
mode = "passt"
[[networks.pn.forwards]]
proto = "tcp"
host_port = 5080
guest = "web"
guest_port = 80
[guests.web]
[[guests.web.nics]]
network = "pn"
"""

# A stand-in QEMU: connects to the addr.path= socket it is given (as QEMU's stream netdev
# does), records whether passt accepted it and which ports were bound meanwhile, exits 3.
FAKE_QEMU = """\
#!/usr/bin/python3
import socket, subprocess, sys
if sys.argv[1:3] == ["-netdev", "help"]:
    print("Available netdev backend types:\\nsocket\\nstream\\ntap\\nuser")
    sys.exit(0)
path = next(w for a in sys.argv for w in a.split(",") if w.startswith("addr.path=")).split("=", 1)[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
listening = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True).stdout
open(sys.argv[0] + ".saw", "w").write(f"connected {path}\\n" + listening)
sys.exit(3)
"""


def _live_passts(ns) -> list[str]:
    """passt processes in the namespace, not counting zombies (exited; pid 1 may reap late)."""
    out = []
    for line in ns.processes():
        pid, comm = line.split(" ", 1)
        try:
            state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if comm.startswith("passt") and state not in ("Z", "X"):
            out.append(line)
    return out


@pytest.fixture
def ns():
    ns = Netns("kn-pst")
    ns.sh("ip link add up0 type veth peer name up1 && ip link set up0 up && ip link set up1 up && "
          "ip addr add 10.5.0.2/24 dev up0 && ip route add default via 10.5.0.1")
    yield ns
    ns.delete()


def test_run_starts_passt_before_qemu_and_stops_it_after(ns, tmp_path):
    topo = tmp_path / "p.toml"
    topo.write_text(TOPOLOGY)
    qemu = tmp_path / "qemu"
    qemu.write_text(FAKE_QEMU)
    qemu.chmod(0o755)
    res = ns.kvmnet("run", "--accel", "tcg", str(topo), "web", env={"KVMNET_QEMU": str(qemu)})
    assert res.returncode == 3, res.stderr  # QEMU's own status
    saw = (tmp_path / "qemu.saw").read_text()
    sock = ns.state_dir / "p" / "passt-kn-p-web-0" / "sock"
    assert saw.startswith(f"connected {sock}\n") and ":5080 " in saw, saw  # passt's forward was bound
    assert "kvmnet: passt " in res.stderr and f"serving {sock}" in res.stderr
    assert not sock.parent.exists()  # stopped and cleaned up
    assert _live_passts(ns) == []
    st = os.stat(ns.state_dir)
    assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o711  # root's, only passable
    assert not (ns.state_dir / "p").exists()  # the topology's directory went with its last passt


def test_passt_start_reports_passts_own_failure(ns, tmp_path):
    topo = tmp_path / "p.toml"
    topo.write_text(TOPOLOGY.replace('mode = "passt"', 'mode = "passt"\nmtu = 1280\nipv6 = false'))
    ns.sh("ip route del default")  # passt finds no interface to copy addresses from
    res = ns.kvmnet("passt", "start", str(topo), "web")
    assert res.returncode == 1 and res.stderr.startswith("kvmnet: guests.web.nics[0] (network pn): passt failed to start (exit "), res.stderr
    assert not list(ns.state_dir.glob("p/passt-*/sock")) and _live_passts(ns) == []


EVERY_OPTION = {
    "set": """\
address = "10.0.2.15/24"
gateway = "10.0.2.2"
address6 = "fd00::15"
gateway6 = "fd00::2"
dns = ["10.0.2.3", "fd00::3"]
search = ["example.org", "lab"]
dns_forward = "10.0.2.3"
map_gateway = false
mtu = 1500
""",
    "off": 'ipv6 = false\ndns = []\nsearch = []\nmtu = 68\n',
    "ipv6-only": "ipv4 = false\n"}


@pytest.mark.parametrize("options", sorted(EVERY_OPTION))
def test_this_passt_accepts_every_option_kvmnet_renders(ns, tmp_path, options):
    ns.sh("ip -6 addr add fd00:5::2/64 dev up0 nodad && ip -6 route add default via fd00:5::1")
    topo = tmp_path / "p.toml"
    topo.write_text(TOPOLOGY.replace('mode = "passt"\n', 'mode = "passt"\n' + EVERY_OPTION[options]))
    res = ns.kvmnet("passt", "start", str(topo), "web")
    assert res.returncode == 0, res.stderr
    assert len(_live_passts(ns)) == 1
    assert ns.kvmnet("passt", "stop", str(topo), "web").returncode == 0 and _live_passts(ns) == []


@pytest.fixture
def foreign_passt(ns):
    """A passt kvmnet did not start (its socket outside kvmnet's state dir), in the same
    namespace: destroy must leave it running."""
    directory = tempfile.mkdtemp(prefix="kn-foreign-passt-")
    os.chmod(directory, 0o777)  # passt drops to nobody before it writes its socket and pid file
    ns.run("passt", "--quiet", "--socket", f"{directory}/sock", "--pid", f"{directory}/pid")
    pid = int(open(f"{directory}/pid").read())
    yield pid, directory
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    shutil.rmtree(directory, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


@pytest.mark.parametrize("pid_file", ["intact", "names-the-foreign-passt"])
def test_destroy_stops_kvmnets_passt_and_no_other(ns, tmp_path, foreign_passt, pid_file):
    foreign, foreign_dir = foreign_passt
    topo = tmp_path / "p.toml"
    topo.write_text(TOPOLOGY)
    before = ns.snapshot()
    res = ns.kvmnet("passt", "start", str(topo), "web")
    assert res.returncode == 0, res.stderr
    ours = int(res.stdout.split()[1])
    nic_dir = ns.state_dir / "p" / "passt-kn-p-web-0"
    assert _alive(ours) and (nic_dir / "sock").exists()
    if pid_file != "intact":  # a stale or forged pid file must not make destroy kill another process
        (nic_dir / "pid").write_text(f"{foreign}\n")
    res = ns.kvmnet("destroy", str(topo))
    assert res.returncode == 0, res.stderr
    assert "stop passt for guest web's NIC 0" in res.stdout, res.stdout
    assert not _alive(ours)
    assert not (ns.state_dir / "p").exists()  # socket, pid file, their directory, the record
    assert _alive(foreign) and sorted(os.listdir(foreign_dir)) == ["pid", "sock"]
    assert snapshot_diff(before, ns.snapshot()) == ""
    res = ns.kvmnet("destroy", str(topo))
    assert res.returncode == 0 and "nothing to destroy" in res.stdout, res.stdout


def test_destroy_force_stops_a_passt_whose_record_is_lost(ns, tmp_path):
    topo = tmp_path / "p.toml"
    topo.write_text(TOPOLOGY)
    res = ns.kvmnet("passt", "start", str(topo), "web")
    assert res.returncode == 0, res.stderr
    ours = int(res.stdout.split()[1])
    (ns.state_dir / "p" / "state.json").unlink()
    res = ns.kvmnet("destroy", "--force", str(topo))
    assert res.returncode == 0 and "stop passt for guest web's NIC 0" in res.stdout, res.stdout + res.stderr
    assert not _alive(ours) and not (ns.state_dir / "p").exists()
