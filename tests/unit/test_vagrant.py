"""The lab VM's Vagrantfile (vagrant/): the properties the lab depends on, read from its text, and
`vagrant validate` of every Vagrantfile in vagrant/ when vagrant and vagrant-libvirt are installed
(offline: no box is needed).

validate runs with its state (.vagrant) and, unless you already have one, its VAGRANT_HOME in a
temporary directory that is removed afterwards, so nothing is left in the checkout or in ~."""

import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VAGRANT_DIR = ROOT / "vagrant"
VAGRANTFILE = VAGRANT_DIR / "Vagrantfile"
SMOKE = VAGRANT_DIR / "smoke-topologies"


def ruby_code(text: str) -> str:
    """The Vagrantfile without its comments, so a commented-out setting does not count."""
    lines = []
    for line in text.splitlines():
        quote, escaped = None, False
        for i, ch in enumerate(line):
            if quote:
                quote = None if ch == quote and not escaped else quote
                escaped = ch == "\\" and not escaped
            elif ch in "\"'":
                quote = ch
            elif ch == "#":
                line = line[:i]
                break
        lines.append(line)
    return "\n".join(lines)


@pytest.fixture(scope="module")
def code() -> str:
    return ruby_code(VAGRANTFILE.read_text())


def test_debian_12_box(code):
    assert re.search(r'^\s*config\.vm\.box\s*=\s*"debian/bookworm64"\s*$', code, re.M)


def test_libvirt_provider_with_nested_kvm(code):
    block = re.search(r'config\.vm\.provider\s*\(?\s*[:"\']libvirt\b.*?\bdo\s*\|(\w+)\|(.*?)^\s*end\b', code, re.M | re.S)
    assert block, "no `config.vm.provider :libvirt do |x| ... end` block"
    var, body = block.group(1), block.group(2)
    assert re.search(rf"\b{var}\.nested\s*=\s*true\b", body)
    assert re.search(rf'\b{var}\.cpu_mode\s*=\s*"host-passthrough"', body)
    memory = re.search(rf"\b{var}\.memory\s*=\s*(\d+)", body)
    assert memory and int(memory.group(1)) >= 4096, "lab tests boot QEMU guests inside: give the VM 4 GiB"


def test_checkout_rsynced_without_host_artefacts(code):
    folder = re.search(r'config\.vm\.synced_folder\s+"\.\.",\s*"/kvmnet",(.*?)\]', code, re.S)
    assert folder, 'the checkout (the directory above vagrant/) must be synced to /kvmnet'
    options = folder.group(1)
    assert re.search(r'type:\s*"rsync"', options)
    excludes = re.findall(r'"([^"]*)"', options.split("rsync__exclude:", 1)[1])
    for needed in (".venv/", ".git/", "/build/", "/artifacts/"):
        assert needed in excludes, f"rsync__exclude lacks {needed!r}: {excludes}"
    # NFS would need set-up on the host; the default /vagrant share must be off.
    assert re.search(r'config\.vm\.synced_folder\s+"\.",\s*"/vagrant",\s*disabled:\s*true', code)


def test_provisioning_uses_the_projects_scripts_and_no_urls(code):
    assert '"/kvmnet/scripts/setup"' in code
    assert '"/kvmnet/vagrant/smoke-topologies"' in code
    assert os.access(SMOKE, os.X_OK)
    # Nothing fetched from arbitrary places: the box is the only download; inside the VM,
    # scripts/setup uses apt (Debian's archive) and pip (PyPI) as everywhere else.
    for text in (code, SMOKE.read_text()):
        assert not re.search(r"https?://|\bcurl\b|\bwget\b|box_url", text)


def test_smoke_script_parses():
    subprocess.run(["bash", "-n", str(SMOKE)], check=True, timeout=30)


def run_vagrant(args: list[str], env: dict, timeout: float, cwd: Path = VAGRANT_DIR) -> tuple[int, str]:
    """vagrant ARGS in its own process group, killed as a whole if it takes longer than timeout."""
    proc = subprocess.Popen(["vagrant", *args, "--no-color", "--no-tty"], cwd=cwd, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"vagrant {' '.join(args)} still running after {timeout} s, killed:\n{out}")
    return proc.returncode, out


# Every Vagrantfile in vagrant/: the lab VM, and the kvmnet-wired lab (vagrant/lab/).
VAGRANTFILES = sorted(VAGRANT_DIR.rglob("Vagrantfile"))


def needs_libvirtd(vagrantfile: Path) -> bool:
    """vagrant-libvirt validates a public_network by asking libvirtd whether its `dev:` exists,
    which needs a running libvirtd and the bridges kvmnet makes (the lab's `before :up` trigger
    applies them, before Vagrant validates). Such a file is validated with --ignore-provider:
    everything but the provider block (boxes, machines, networks' syntax, triggers)."""
    code = ruby_code(vagrantfile.read_text())
    loaded = [vagrantfile.parent / f"{name}.rb" for name in re.findall(r'require_relative\s+"([^"]+?)(?:\.rb)?"', code)]
    return any(":public_network" in ruby_code(p.read_text()) for p in [vagrantfile, *loaded])


@pytest.mark.parametrize("vagrantfile", VAGRANTFILES, ids=lambda p: str(p.parent.relative_to(ROOT)))
def test_vagrant_validate(vagrantfile):
    if not shutil.which("vagrant"):
        pytest.skip("vagrant not installed: apt-get install vagrant vagrant-libvirt")
    where = vagrantfile.parent
    before = sorted(p.name for p in where.iterdir())
    with tempfile.TemporaryDirectory(prefix="kvmnet-vagrant-") as tmp:
        # Your own vagrant home if you have one (plugins installed with `vagrant plugin install`
        # live there); otherwise a throwaway one rather than a new ~/.vagrant.d.
        home = os.environ.get("VAGRANT_HOME") or os.path.expanduser("~/.vagrant.d")
        env = dict(os.environ,
                   VAGRANT_CHECKPOINT_DISABLE="1",     # no version check over the network
                   VAGRANT_DEFAULT_PROVIDER="libvirt",
                   VAGRANT_DOTFILE_PATH=os.path.join(tmp, "dot"),  # not vagrant/.vagrant
                   VAGRANT_HOME=home if os.path.isdir(home) else os.path.join(tmp, "home"),
                   VAGRANT_CWD=str(where))
        env.pop("VAGRANT_VAGRANTFILE", None)
        rc, out = run_vagrant(["validate", *(["--ignore-provider"] if needs_libvirtd(vagrantfile) else [])],
                              env, timeout=120, cwd=where)
    # Without the plugin, vagrant says so (in one run, cheaper than a `vagrant plugin list` first).
    if rc != 0 and "provider 'libvirt' could not be found" in out:
        pytest.skip("vagrant-libvirt plugin not installed: apt-get install vagrant-libvirt")
    assert rc == 0, out
    assert "validated successfully" in out, out
    assert sorted(p.name for p in where.iterdir()) == before, f"vagrant validate left files in {where}"
