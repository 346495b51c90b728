"""The malformed-topology corpus: every file in tests/data/bad/ is rejected with an InputError
that names the file and contains the file's expected message.

Each corpus file starts with

    # expect: <substring of the expected message, including the key path>
    # xfail: <why>          (optional second line: a known loader bug, not fixed yet)

Files without `# xfail:` are checked together, and every mismatch is reported in one failure.
Files with it are strict xfails, one test each: once kvmnet is fixed the test passes, pytest
reports XPASS as a failure, and the `# xfail:` line is to be removed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

from kvmnet import config
from kvmnet.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
BAD = ROOT / "tests" / "data" / "bad"
CLI = [sys.executable, "-m", "kvmnet.cli"]


@dataclass(frozen=True)
class Case:
    path: Path
    expect: str
    xfail: str | None

    @property
    def name(self) -> str:
        return self.path.name


def read_case(path: Path) -> Case:
    head = path.read_bytes()[:8192].decode("utf-8", "replace").lstrip("\ufeff").splitlines()
    if not head or not head[0].startswith("# expect: ") or not head[0][len("# expect: "):].strip():
        raise ValueError(f"{path}: the first line must be `# expect: <message substring>`")
    xfail = head[1][len("# xfail: "):].strip() if len(head) > 1 and head[1].startswith("# xfail: ") else None
    return Case(path, head[0][len("# expect: "):], xfail)


def corpus() -> list[Case]:
    return [read_case(p) for p in sorted(BAD.glob("*.toml"))]


CASES = corpus()
EXPECTED = [c for c in CASES if c.xfail is None]
KNOWN_BUGS = [c for c in CASES if c.xfail is not None]


def mismatch(case: Case, error: InputError | None = None, crash: str | None = None) -> str | None:
    """Why `case` was not rejected as expected, or None. `error` is what config.load raised."""
    if crash is not None:
        return f"{case.name}: crashed instead of InputError:\n{crash}"
    if error is None:
        return f"{case.name}: accepted (expected: {case.expect})"
    text = str(error)
    lines = text.splitlines()
    path = str(case.path)
    wrong = []
    if not any(case.expect in line and line.startswith(path) for line in lines):
        wrong.append(f"no problem line starts with the file path and contains {case.expect!r}")
    try:
        n_lines = len(case.path.read_bytes().splitlines())
    except OSError:
        n_lines = 0
    for p in error.problems:
        if p.file != path:
            wrong.append(f"problem names file {p.file!r}")
        if p.line is not None and not 1 <= p.line <= max(n_lines, 1):
            wrong.append(f"problem at line {p.line} of a {n_lines}-line file: {p}")
    if wrong:
        return f"{case.name}: " + "; ".join(wrong) + "\n    got: " + text.replace("\n", "\n         ")
    return None


def load_and_check(case: Case) -> str | None:
    try:
        config.load(str(case.path))
    except InputError as exc:
        return mismatch(case, exc)
    except Exception:  # noqa: BLE001 - any other exception is a loader crash
        return mismatch(case, crash=traceback.format_exc())
    return mismatch(case)


def test_corpus_is_well_formed():
    names = [p.name for p in BAD.iterdir()]
    assert len(CASES) >= 70, f"only {len(CASES)} corpus files"
    assert sorted(names) == sorted(c.name for c in CASES), "only *.toml files belong in tests/data/bad"
    for case in CASES:
        stem = case.path.stem
        assert stem == stem.lower() and " " not in stem, f"{case.name}: name files in lower-case-with-dashes"
        assert case.path.stat().st_size <= config.MAX_FILE_BYTES, f"{case.name}: over the size limit; generate it in tmp_path"


def test_every_bad_file_is_rejected_with_its_message():
    problems = [m for case in EXPECTED if (m := load_and_check(case))]
    assert not problems, f"{len(problems)} of {len(EXPECTED)} corpus files not rejected as expected:\n\n" + "\n\n".join(problems)


# Collected only while some file is marked `# xfail:` (no known loader bug is left today): an
# empty parametrization would show as a skip that tells a reader nothing.
if KNOWN_BUGS:
    @pytest.mark.parametrize("case", [pytest.param(c, id=c.name, marks=pytest.mark.xfail(strict=True, reason=c.xfail))
                                      for c in KNOWN_BUGS])
    def test_known_loader_bug(case):
        """In a child process with a timeout: such a file may make the loader hang."""
        try:
            res = subprocess.run(CLI + ["validate", str(case.path)], capture_output=True, text=True, timeout=5,
                                 cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        except subprocess.TimeoutExpired:
            pytest.fail(f"{case.name}: kvmnet validate did not finish in 5 s")
        assert "Traceback" not in res.stderr, res.stderr
        assert res.returncode == 2, f"{case.name}: exit {res.returncode} (expected 2 with {case.expect!r})\n{res.stdout}{res.stderr}"
        assert any(case.expect in line and line.startswith(str(case.path)) for line in res.stderr.splitlines()), res.stderr


CLI_SAMPLE = ["dhcp-end-outside-subnet.toml", "toml-duplicate-key.toml", "non-utf8-ff-byte.toml",
              "bridge-name-command-subst.toml", "bridge-name-cyrillic-a.toml", "user-guestfwd-target-comma.toml",
              "socket-tcp-three-guests.toml", "forwards-100k.toml"]


@pytest.mark.parametrize("name", CLI_SAMPLE)
def test_cli_validate_exits_2(name):
    case = read_case(BAD / name)
    assert case.xfail is None
    res = subprocess.run(CLI + ["validate", str(case.path)], capture_output=True, text=True, timeout=60,
                         cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stdout == ""
    assert "Traceback" not in res.stderr
    assert any(case.expect in line and line.startswith(str(case.path)) for line in res.stderr.splitlines()), res.stderr


def test_file_over_the_size_limit(tmp_path):
    """Generated here rather than committed: one byte over 4 MiB of otherwise valid TOML."""
    limit = config.MAX_FILE_BYTES
    head = b'name = "big"\n[networks.seg]\nmode = "socket"\ntransport = "mcast"\nport = 10000\n'
    pad = b"# padding to the size limit\n"

    def write(path: Path, size: int) -> Path:
        body = head + pad * ((size - len(head)) // len(pad))
        path.write_bytes(body + b"#" * (size - len(body) - 1) + b"\n")
        assert path.stat().st_size == size
        return path

    over = write(tmp_path / "over.toml", limit + 1)
    with pytest.raises(InputError) as exc:
        config.load(str(over))
    assert str(exc.value) == f"{over}: file is {limit + 1} bytes; topology files are at most {limit}"
    res = subprocess.run(CLI + ["validate", str(over)], capture_output=True, text=True, timeout=60,
                         cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert res.returncode == 2 and f"{over}: file is {limit + 1} bytes" in res.stderr, res.stderr
    # the limit itself is allowed: exactly 4 MiB loads
    at = write(tmp_path / "at.toml", limit)
    assert config.load(str(at)).network("seg").socket.port == 10000
