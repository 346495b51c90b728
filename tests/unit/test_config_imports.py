"""netaddr is for config code, and only where a MAC is spelled other than kvmnet writes it: QEMU
runs the hook on every guest start, and its fast path (hook, statedir, rtnl) must not pay for the
import (~8 ms on top of kvmnet's own); a cold apply need not either (test_startup_imports.py)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imports_netaddr(code: str) -> bool:
    code = f"import sys\n{code}\nprint('netaddr' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT)}, check=True)
    return res.stdout.strip().splitlines()[-1] == "True"


def test_hook_fast_path_does_not_import_netaddr():
    assert not imports_netaddr("import kvmnet.hook, kvmnet.engine.statedir, kvmnet.host.rtnl")


def test_config_does_for_a_mac_in_another_spelling():  # else the test above would pass for the wrong reason
    load = "from kvmnet import config\nconfig.load_text('[networks.n]\\nmode = \"isolated\"\\nbridge = \"br0\"\\nmac = \"{}\"\\n', 't.toml')"
    assert not imports_netaddr(load.format("52:54:00:AB:CD:01"))
    assert imports_netaddr(load.format("5254.00ab.cd01"))
