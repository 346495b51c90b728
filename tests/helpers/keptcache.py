"""A topology file loaded through the state dir's topology cache and kept there, as a
successful apply leaves it (engine/topocache.py)."""

from __future__ import annotations

from pathlib import Path

from kvmnet.engine import topocache

ROOT = Path(__file__).resolve().parents[2]


def kept_nat(tmp_path: Path) -> tuple[Path, Path]:
    """(topologies/nat.toml copied into tmp_path, a private state dir holding its kept entry)."""
    src = tmp_path / "nat.toml"
    src.write_text((ROOT / "topologies" / "nat.toml").read_text())
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    topocache.load(str(src), str(state))
    topocache.keep_loaded()
    return src, state
