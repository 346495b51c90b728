"""qemu-bridge-helper's ACL: kvmnet's `allow` lines in CONF_DIR/kvmnet.conf, included from
CONF_DIR/bridge.conf. The helper reads /etc/qemu/bridge.conf as the user who runs QEMU, so the
file is root-owned and world-readable (0644, never writable by others). Other lines of
bridge.conf are never touched: kvmnet adds its include line (creating bridge.conf if there is
none) and removes exactly that line, and the file if kvmnet created it, with its last allow."""

from __future__ import annotations

import os

DEFAULT_DIR = "/etc/qemu"
OWN_FILE, MAIN_FILE = "kvmnet.conf", "bridge.conf"
_TAG = "# kvmnet topology "  # the comment line above each allow: whose line it is
_CREATED = "# created by kvmnet for its include line below; removed with it\n"


def conf_dir() -> str:
    return os.environ.get("KVMNET_QEMU_CONF_DIR") or DEFAULT_DIR


def read(directory: str) -> dict[str, str]:
    """bridge -> topology, for kvmnet's allow lines (only while bridge.conf includes the file)."""
    main, own = _lines(os.path.join(directory, MAIN_FILE)), _lines(os.path.join(directory, OWN_FILE))
    if _include(directory) not in main:
        return {}
    return {line.split()[1]: tag[len(_TAG):].strip()
            for tag, line in zip(own, own[1:]) if tag.startswith(_TAG) and line.startswith("allow ")}


def run(step) -> None:
    a = step.args
    if step.op == "qemuacl.add":
        add(a["conf_dir"], a["bridge"], a["topology"])
    else:
        remove(a["conf_dir"], a["bridge"], a["topology"])


def add(directory: str, bridge: str, topology: str) -> None:
    os.makedirs(directory, mode=0o755, exist_ok=True)
    own = [l for l in _pairs_without(_lines(os.path.join(directory, OWN_FILE)), bridge)]
    _write(os.path.join(directory, OWN_FILE), own + [f"{_TAG}{topology}", f"allow {bridge}"])
    main_path = os.path.join(directory, MAIN_FILE)
    main = _lines(main_path)
    if _include(directory) not in main:
        head = [] if os.path.exists(main_path) else [_CREATED.rstrip("\n")]
        _write(main_path, head + main + [_include(directory)])


def remove(directory: str, bridge: str, topology: str) -> None:
    own_path, main_path = os.path.join(directory, OWN_FILE), os.path.join(directory, MAIN_FILE)
    own = _pairs_without(_lines(own_path), bridge, topology)
    if any(l.startswith("allow ") for l in own):
        _write(own_path, own)
        return
    if os.path.exists(own_path):
        os.unlink(own_path)
    main = [l for l in _lines(main_path) if l != _include(directory)]
    if main in ([], [_CREATED.rstrip("\n")]):
        if os.path.exists(main_path):
            os.unlink(main_path)
    else:
        _write(main_path, main)


def _include(directory: str) -> str:
    return f"include {os.path.join(directory, OWN_FILE)}"


def _pairs_without(lines: list[str], bridge: str, topology: str | None = None) -> list[str]:
    """The lines without kvmnet's (tag, allow BRIDGE) pair (of that topology, when given)."""
    out, skip = [], False
    for i, line in enumerate(lines):
        if skip:
            skip = False
            continue
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.startswith(_TAG) and nxt == f"allow {bridge}" and topology in (None, line[len(_TAG):].strip()):
            skip = True
            continue
        out.append(line)
    return out


def _lines(path: str) -> list[str]:
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def _write(path: str, lines: list[str]) -> None:
    """Atomically, 0644 root's: the helper reads it as whichever user runs QEMU."""
    tmp = f"{path}.kvmnet-tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "w") as f:
        f.write("".join(l + "\n" for l in lines))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
