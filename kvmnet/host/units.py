"""systemd units shipped in the package (kvmnet/data/systemd/*.service), placed where systemd
reads them: pip installs no files outside the Python tree, so `kvmnet install-units` does."""

from __future__ import annotations

import os
import shutil
import sys
from importlib import resources

DEFAULT_DIR = "/etc/systemd/system"


def templates() -> dict[str, str]:
    """unit file name -> its text with @KVMNET@ and @CONFIG_DIR@ still to fill in."""
    folder = resources.files("kvmnet") / "data" / "systemd"
    return {entry.name: entry.read_text() for entry in sorted(folder.iterdir(), key=lambda e: e.name)
            if entry.name.endswith(".service")}


def render(text: str, kvmnet: str, config_dir: str) -> str:
    return text.replace("@KVMNET@", kvmnet).replace("@CONFIG_DIR@", config_dir)


def kvmnet_command() -> str | None:
    """The absolute path of the kvmnet command (systemd wants one): the one beside this Python
    (a virtualenv's bin), else the first on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "kvmnet")
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("kvmnet")
    return os.path.abspath(found) if found else None


def install(directory: str, kvmnet: str, config_dir: str) -> list[str]:
    """Write every unit into `directory` (mode 0644, atomically); their paths."""
    os.makedirs(directory, mode=0o755, exist_ok=True)
    out = []
    for name, text in templates().items():
        path = os.path.join(directory, name)
        tmp = f"{path}.tmp.{os.getpid()}"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), "w") as f:
            f.write(render(text, kvmnet, config_dir))
        os.replace(tmp, path)
        out.append(path)
    return out
