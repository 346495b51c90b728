"""The package's layers, enforced: each module imports only from its own layer or those below.

    cli, cli_quick, cli_extra, cli_common, cli_man, cli_interop, hook_main (print, exit)  4
    engine/  observe, plan, transaction      3
    host/    the only code with side effects 2
    config/, render/  pure                   1   (neither imports the other)
    errors, exitcodes, model, observed, naming, ifname, gcpause, valueclass  0
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "kvmnet"
RANK = {"config": 1, "render": 1, "host": 2, "engine": 3, "cli": 4, "hook_main": 4, "hook": 3,
        "cli_common": 4, "cli_quick": 4, "cli_complete": 4, "cli_lazy": 4, "cli_prestart": 4, "entry": 4, "cli_capture": 4, "cli_extra": 4, "cli_man": 4, "cli_interop": 4, "cli_service": 4, "cli_watch": 4, "cli_passt": 4, "exitcodes": 0,
        "errors": 0, "model": 0, "observed": 0, "naming": 0, "ifname": 0, "gcpause": 0, "valueclass": 0, "__init__": 0, "__main__": 4}


def _layer(module: str) -> str:
    """'kvmnet.engine.plan.links' -> 'engine'."""
    return module.split(".")[1] if module.count(".") else "__init__"


def _module_of(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    return (PKG / f"{name}.py").exists() or (PKG / name).is_dir()


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute kvmnet module) for every import in the file, lazy ones included."""
    module = _module_of(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "kvmnet" or target.startswith("kvmnet."):
                if target.count(".") == 0:  # `from kvmnet import x` / `from . import x`: module x, or a name in __init__
                    out += [(node.lineno, f"kvmnet.{a.name}" if _is_module(a.name) else "kvmnet") for a in node.names]
                else:
                    out.append((node.lineno, target))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("kvmnet.")]
    return out


def test_every_module_has_a_layer():
    layers = {_layer(_module_of(p)) for p in PKG.rglob("*.py")}
    assert layers <= set(RANK), f"modules outside the known layers: {sorted(layers - set(RANK))}"


def test_nothing_reaches_upward():
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        mine = _layer(_module_of(path))
        for line, target in _imports(path):
            theirs = _layer(target)
            if RANK[theirs] > RANK[mine] or (RANK[mine] == 1 and theirs != mine and RANK[theirs] == 1):
                bad.append(f"{path.relative_to(PKG.parent)}:{line}: {mine} imports {target} ({theirs})")
    assert not bad, "imports that reach upward or sideways:\n" + "\n".join(bad)


def test_the_layering_check_resolves_relative_imports():
    """The check can fail: relative imports resolve to the modules they name."""
    found = dict((m, n) for n, m in _imports(PKG / "engine" / "record.py"))
    assert "kvmnet.host.files" in found and "kvmnet.errors" in found


MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 60


def test_modules_and_functions_stay_short():
    """Short modules with one job: none over 400 lines, no function over 60."""
    long = []
    for path in sorted(PKG.rglob("*.py")):
        text = path.read_text()
        name = path.relative_to(PKG.parent)
        if text.count("\n") > MAX_MODULE_LINES:
            long.append(f"{name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                size = node.end_lineno - node.lineno + 1
                if size > MAX_FUNCTION_LINES:
                    long.append(f"{name}:{node.lineno}: {node.name}() is {size} lines")
    assert not long, "\n".join(long)
