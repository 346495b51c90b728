"""`kvmnet apply` on every malformed topology in tests/data/bad/ (see tests/unit/test_bad_corpus.py
for the file format), as root in one throwaway namespace: each run exits 2 naming the file and
the expected problem, and the namespace (links, addresses, routes, sysctls, nft and iptables
rules, processes, state files) is exactly as before.

Files marked `# xfail:` are known loader bugs the loader accepts (or hangs on); each gets its own
namespace and a strict xfail, since apply may really change the namespace for them.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers.netns import KVMNET, ROOT, snapshot_diff

pytestmark = pytest.mark.root

BAD = Path(__file__).resolve().parents[1] / "data" / "bad"


def _cases() -> list[tuple[Path, str, str | None]]:
    out = []
    for path in sorted(BAD.glob("*.toml")):
        head = path.read_bytes()[:8192].decode("utf-8", "replace").lstrip("\ufeff").splitlines()
        expect = head[0].removeprefix("# expect: ")
        xfail = head[1].removeprefix("# xfail: ").strip() if len(head) > 1 and head[1].startswith("# xfail: ") else None
        out.append((path, expect, xfail))
    return out


CASES = _cases()


def _wrong(path: Path, expect: str, res) -> str | None:
    lines = res.stderr.splitlines()
    if res.returncode == 2 and any(expect in line and line.startswith(str(path)) for line in lines):
        return None
    return f"{path.name}: exit {res.returncode}, expected 2 with {expect!r}\n    {res.stderr.strip()[:2000]}"


def test_apply_rejects_every_bad_file_and_changes_nothing(netns):
    cases = [(p, e) for p, e, xfail in CASES if xfail is None]
    assert len(cases) >= 70
    before = netns.snapshot()
    # the big files first, so that they do not finish last on one worker
    cases.sort(key=lambda c: -c[0].stat().st_size)
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda c: (c, netns.kvmnet("apply", str(c[0]))), cases))
    wrong = [w for (path, expect), res in results if (w := _wrong(path, expect, res))]
    after = netns.snapshot()
    assert not wrong, f"{len(wrong)} of {len(cases)} files not rejected as expected:\n" + "\n".join(wrong)
    assert after == before, snapshot_diff(before, after)


# Collected only while some corpus file is marked `# xfail:` (none is today): an empty
# parametrization would show as a skip that tells a reader nothing.
if any(x for _, _, x in CASES):
    @pytest.mark.parametrize("path,expect", [
        pytest.param(p, e, id=p.name, marks=pytest.mark.xfail(strict=True, reason=x)) for p, e, x in CASES if x])
    def test_known_loader_bug_file(netns, path, expect):
        before = netns.snapshot()
        env = dict(os.environ, KVMNET_STATE_DIR=str(netns.state_dir), PYTHONPATH=str(ROOT))
        # netns.kvmnet() with a timeout: one of these files makes the loader hang, another makes
        # apply create 10000 taps
        res = netns.run(*KVMNET, "apply", str(path), env=env, check=False, timeout=4)
        after = netns.snapshot()
        assert _wrong(path, expect, res) is None, _wrong(path, expect, res)
        assert after == before, snapshot_diff(before, after)
