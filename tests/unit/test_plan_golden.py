"""Golden plans: tests/data/plans/CASE/{topology.toml, observed.json, [record.json]} -> expected.txt.

Regenerate with KVMNET_UPDATE_GOLDEN=1 and review the diff like code.
"""

import json
import os
from pathlib import Path

import pytest

from kvmnet import config
from kvmnet.engine import plan
from kvmnet.observed import Observed
from kvmnet.engine.record import Record

CASES = Path(__file__).resolve().parents[1] / "data" / "plans"


def render(case: Path) -> str:
    topo = config.load_text((case / "topology.toml").read_text(), "topology.toml")
    observed = Observed.from_json(json.loads((case / "observed.json").read_text()))
    rec_path = case / "record.json"
    record = Record.from_json(json.loads(rec_path.read_text()), str(rec_path)) if rec_path.exists() else Record(topo.name)
    lines = []
    for a in plan.plan(topo, observed, record, f"/run/kvmnet/{topo.name}"):
        lines.append(f"{a.kind:6} {a.key}")
        lines.append(f"       do:   {a.do.command()}")
        lines.append(f"       undo: {a.undo.command() if a.undo else '-'}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir()))
def test_plan_matches_golden(case):
    got = render(CASES / case)
    golden = CASES / case / "expected.txt"
    if os.environ.get("KVMNET_UPDATE_GOLDEN"):
        golden.write_text(got)
    assert got == golden.read_text()
