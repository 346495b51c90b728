"""netaddr is for config and render code: QEMU runs the hook on every guest start, and its fast
path (hook, statedir, rtnl) must not pay for the import (~8 ms on top of kvmnet's own)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imports_netaddr(*modules: str) -> bool:
    code = f"import sys\nimport {', '.join(modules)}\nprint('netaddr' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT)}, check=True)
    return res.stdout.strip() == "True"


def test_hook_fast_path_does_not_import_netaddr():
    assert not imports_netaddr("kvmnet.hook", "kvmnet.engine.statedir", "kvmnet.host.rtnl")


def test_config_does():  # else the test above would pass for the wrong reason
    assert imports_netaddr("kvmnet.config")
