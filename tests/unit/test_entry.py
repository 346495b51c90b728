"""kvmnet/entry.py: the command ends without the interpreter's teardown, but with everything
teardown would do that matters: exit handlers run, stdout and stderr flushed, the exit code kept."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def kvmnet(*args: str, prelude: str = "") -> subprocess.CompletedProcess:
    code = f"import sys\n{prelude}\nsys.argv = ['kvmnet', *{list(args)!r}]\nfrom kvmnet.entry import main\nmain()\n" \
           "print('not reached', file=sys.stderr)"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "KVMNET_NETLINK_WORKER": "0", "PYTHONPATH": str(ROOT)})


def test_output_to_a_pipe_is_flushed_and_the_code_kept(tmp_path):
    done = kvmnet("--state-dir", str(tmp_path), "validate", "topologies/nat.toml")
    assert done.returncode == 0 and done.stdout.startswith("topologies/nat.toml: file ok: topology nat")
    assert len(done.stdout.splitlines()) == 2 and "not reached" not in done.stderr


def test_an_error_keeps_its_exit_code_and_message(tmp_path):
    done = kvmnet("--state-dir", str(tmp_path), "validate", str(tmp_path / "missing.toml"))
    assert done.returncode == 2 and "missing.toml" in done.stderr and "not reached" not in done.stderr


def test_exit_handlers_run_before_the_end(tmp_path):
    prelude = "import atexit\natexit.register(lambda: print('handler ran', file=sys.stderr, flush=True))"
    done = kvmnet("--version", prelude=prelude)
    assert done.returncode == 0 and done.stderr == "handler ran\n" and "version" in done.stdout


@pytest.mark.parametrize("code, status, said", [(None, 0, ""), (3, 3, ""), ("no such thing", 1, "no such thing\n")])
def test_sys_exit_values_end_as_the_interpreter_ends_them(code, status, said):
    prelude = f"import kvmnet.cli as c\nc.main = lambda: sys.exit({code!r})"
    done = kvmnet("--version", prelude=prelude)
    assert done.returncode == status and done.stderr == said


def test_what_is_still_buffered_is_written():
    # (click flushes what it echoes: this is written to the block-buffered pipe after it)
    done = kvmnet("--version", prelude="import atexit\natexit.register(lambda: print('buffered'))")
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == "buffered"


@pytest.mark.parametrize("args, collecting", [(("validate", "topologies/nat.toml"), "False"), (("--version",), "True"),
                                              (("--state-dir", "/tmp", "plan", "--help"), "False")])
def test_the_one_shot_verbs_run_without_the_cycle_collector(args, collecting):
    prelude = "import atexit, gc\natexit.register(lambda: print('collecting', gc.isenabled(), file=sys.stderr))"
    done = kvmnet(*args, prelude=prelude)
    assert done.returncode == 0 and done.stderr.splitlines()[-1] == f"collecting {collecting}"


@pytest.mark.parametrize("closed", [1, 2])
def test_a_closed_stdout_or_stderr_is_no_failure(closed, tmp_path):
    # (the interpreter then has None for that stream)
    done = subprocess.run(f"{sys.executable} -c \"import sys; sys.argv = ['kvmnet', '--state-dir', '{tmp_path}', "
                          f"'validate', 'topologies/nat.toml']; from kvmnet.entry import main; main()\" {closed}>&-",
                          shell=True, capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "KVMNET_NETLINK_WORKER": "0", "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
