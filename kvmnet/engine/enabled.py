"""Enabled topologies: the files in the config dir (/etc/kvmnet/*.toml) that the host should
have, applied at boot by `kvmnet apply-enabled` (the kvmnet.service unit).

`enable` installs a *copy*, named after the topology: what boot applies is the version that
was enabled, never a half-edited working file, and a name clash with a different file is
refused rather than overwritten. Each enabled topology is applied as its own transaction, so
one that fails leaves the others applied.
"""

from __future__ import annotations

import os

from .. import config
from ..errors import InputError, KvmnetError
from ..host.files import write_private
from . import record as records, statedir
from .steps import Result
from ..valueclass import field, mutable

DEFAULT_CONFIG_DIR = "/etc/kvmnet"


def resolve(explicit: str | None) -> str:
    """--config-dir, else $KVMNET_CONFIG_DIR, else /etc/kvmnet; absolute, because the state
    record keeps the path a topology was applied from."""
    return os.path.abspath(explicit or os.environ.get("KVMNET_CONFIG_DIR") or DEFAULT_CONFIG_DIR)


@mutable
class Outcome:
    """What happened to one enabled topology: `error` is None when it is applied."""

    name: str
    file: str
    result: Result = field(default_factory=Result)
    error: KvmnetError | None = None


def files(config_dir: str) -> list[str]:
    """The enabled files, sorted (none if the dir is missing)."""
    try:
        names = sorted(n for n in os.listdir(config_dir) if n.endswith(".toml") and not n.startswith("."))
    except FileNotFoundError:
        return []
    return [os.path.join(config_dir, n) for n in names if os.path.isfile(os.path.join(config_dir, n))]


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def enable(source: str, config_dir: str, replace: bool = False) -> tuple[str, bool]:
    """Install a copy of `source` as <config-dir>/<topology>.toml: (that path, whether it was
    written; False when the same content is already enabled). The file must load; another
    version of the topology already enabled is refused (InputError naming both) unless
    `replace`."""
    topo = config.load(source)
    target = os.path.join(config_dir, f"{topo.name}.toml")
    text = _read(source)
    others = [p for p in files(config_dir) if p != target and _topology_of(p) == topo.name]
    if os.path.exists(target) and _read(target) == text and not others:
        return target, False
    clash = others + ([target] if os.path.exists(target) else [])
    if clash and not replace:
        raise InputError(f"{source}: topology {topo.name!r} is already enabled from {clash[0]}, with other content; "
                         f"`kvmnet enable --replace {source}` replaces it (or give this file another `name`)")
    os.makedirs(config_dir, mode=0o755, exist_ok=True)
    write_private(target, text, durable=True)
    for path in others:
        os.unlink(path)
    return target, True


def _topology_of(path: str) -> str | None:
    try:
        return config.load(path).name
    except KvmnetError:
        return None


def find(name: str, config_dir: str) -> str | None:
    """The enabled file of topology `name` (by file name first, then by content)."""
    direct = os.path.join(config_dir, f"{name}.toml")
    if os.path.isfile(direct):
        return direct
    return next((p for p in files(config_dir) if _topology_of(p) == name), None)


def disable(name: str, config_dir: str) -> str:
    """Remove topology `name`'s enabled file; its path. InputError if it is not enabled."""
    path = find(name, config_dir)
    if path is None:
        raise InputError(f"topology {name!r} is not enabled in {config_dir}")
    os.unlink(path)
    return path


def apply_all(config_dir: str, state_root: str, host=None) -> list[Outcome]:
    """Apply every enabled topology, each its own transaction under the state lock; a failure
    (a bad file, a host error) is kept in its Outcome and the rest go on."""
    from .transaction import apply
    out, seen = [], {}
    for path in files(config_dir):
        outcome = Outcome(os.path.splitext(os.path.basename(path))[0], path)
        out.append(outcome)
        try:
            topo = config.load(path)
            outcome.name = topo.name
            if topo.name in seen:
                raise InputError(f"{path}: topology {topo.name!r} is enabled twice (also from {seen[topo.name]}); "
                                 "disable one of them")
            seen[topo.name] = path
            with statedir.locked(state_root):
                outcome.result = apply(topo, state_root, host=host, replace=_same_text(topo, state_root))
        except KvmnetError as exc:
            outcome.error = exc
    return out


def _same_text(topo, state_root: str) -> bool:
    """The topology is applied from another path with this very text (`kvmnet apply ~/nat.toml`,
    then `kvmnet enable ~/nat.toml`): taking it over changes nothing, so no --replace is needed.
    A different text applied from elsewhere stays refused, as `apply` refuses it."""
    rec = records.load(state_root, topo.name)
    return bool(rec.source_sha256) and rec.source_sha256 == records.source_digest(topo.source)


def destroy_all(config_dir: str, state_root: str, host=None) -> list[Outcome]:
    """Destroy every enabled topology that is applied (the unit's ExecStop), each on its own;
    their DHCP leases stay for the next boot (as libvirt keeps them until a network is undefined)."""
    from .teardown import destroy
    out = []
    for path in files(config_dir):
        name = _topology_of(path) or os.path.splitext(os.path.basename(path))[0]
        outcome = Outcome(name, path)
        try:
            with statedir.locked(state_root):
                if os.path.isfile(records.path_for(state_root, name)):
                    outcome.result = destroy(name, state_root, host=host, keep_leases=True)
        except KvmnetError as exc:
            outcome.error = exc
        out.append(outcome)
    return out


@mutable
class Row:
    """One line of `kvmnet list`: a topology enabled here, applied here, or both."""

    name: str
    enabled: str | None  # the enabled file
    applied: str | None  # the file it was applied from
    state: str  # in sync | drifted (N step(s)) | not applied | not enabled | ... (see overview)

    def to_json(self) -> dict:
        return {"topology": self.name, "enabled": self.enabled, "applied": self.applied, "state": self.state}


def overview(config_dir: str, state_root: str, host=None, drift: bool = True) -> list[Row]:
    """Enabled and applied topologies side by side. `drift` plans each applied one against the
    host (reads only; a few ms each) to say whether it is still in sync."""
    applied = {r.topology: r for r in records.all_records(state_root)}
    enabled = {}
    for path in files(config_dir):
        enabled.setdefault(_topology_of(path) or os.path.splitext(os.path.basename(path))[0], path)
    rows = []
    for name in sorted(set(applied) | set(enabled)):
        rec, path = applied.get(name), enabled.get(name)
        rows.append(Row(name, path, rec.file if rec else None, _state(name, path, rec, state_root, host, drift)))
    return rows


def _state(name, path, rec, state_root, host, drift: bool) -> str:
    if rec is None:
        return "not applied"
    try:
        text = _read(path) if path else None
        if text is not None and rec.source and text != rec.source:
            return "applied from another version than the enabled file"
        if not drift or not rec.source:
            return "applied"
        from .context import Context
        topo = config.load_text(rec.source, rec.file or f"{name}.toml", name)
        actions = Context(topo, state_root, host=host, replace=True).actions
    except (KvmnetError, OSError) as exc:
        return f"unknown ({str(exc).splitlines()[0]})"
    return "in sync" if not actions else f"drifted ({len(actions)} step(s) to repair)"
