"""Bandwidth limits on the host: run tc.limit / tc.unlimit steps and read qdiscs back.

Through the `tc` and `ip` commands (iproute2), with the argv render/tc.py builds: the same
commands `kvmnet plan` prints. Idempotent like the netlink primitives: an ifb that is already
there is reused, a qdisc or link that is already gone is success for an undo."""

from __future__ import annotations

import json
import shutil
import subprocess

from ..errors import HostError
from ..render import tc as render

_GONE = ("Cannot find device", "Cannot find specified qdisc", "No such file or directory", "Cannot delete qdisc with handle of zero",
         "Invalid handle", "does not exist")


def _tool(argv: list[str]) -> list[str]:
    exe = shutil.which(argv[0], path="/usr/sbin:/usr/bin:/sbin:/bin")
    if exe is None:
        raise HostError(f"{argv[0]} (iproute2) is not installed; bandwidth limits need it")
    return [exe, *argv[1:]]


def _run(argv: list[str], harmless: tuple[str, ...] = ()) -> None:
    done = subprocess.run(_tool(argv), capture_output=True, text=True, timeout=30)
    if done.returncode != 0 and not any(h in done.stderr for h in harmless):
        raise HostError(f"{' '.join(argv)}: {done.stderr.strip() or f'exit {done.returncode}'}")


def limit(args: dict) -> None:
    if args["direction"] == "out":  # a fresh ingress qdisc: its old filters go with it
        _run(["tc", "qdisc", "del", "dev", args["dev"], "ingress"], _GONE)
    for argv in render.limit(args):
        _run(argv, ("File exists",) if argv[:3] == ["ip", "link", "add"] else ())


def unlimit(args: dict) -> None:
    for argv in render.unlimit(args):
        _run(argv, _GONE)


def run(step) -> None:
    (limit if step.op == "tc.limit" else unlimit)(step.args)


def _root(qdiscs: list[dict]) -> dict | None:
    for q in qdiscs:
        if q.get("root"):
            opts = q.get("options") or {}
            return {"kind": q.get("kind"), "rate": opts.get("rate"), "burst": opts.get("burst")}
    return None


def _redirect(filters: list[dict]) -> str | None:
    """The device a catch-all mirred redirect on the ingress sends packets to."""
    for f in filters:
        for action in (f.get("options") or {}).get("actions") or ():
            if action.get("kind") == "mirred" and action.get("mirred_action") == "redirect":
                return action.get("to_dev")
    return None


def _json(argv: list[str]) -> list[dict]:
    done = subprocess.run(_tool(argv), capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        return []  # no such link: nothing is shaped there
    try:
        return json.loads(done.stdout or "[]")
    except ValueError:
        return []


def observe(devs: list[str]) -> dict:
    """link -> {"root": {kind, rate (bytes/s), burst (bytes)} or None, "redirect": ifb or None}."""
    out = {}
    for dev in devs:
        qdiscs = _json(["tc", "-j", "qdisc", "show", "dev", dev])
        ingress = any(q.get("kind") == "ingress" for q in qdiscs)
        filters = _json(["tc", "-j", "filter", "show", "dev", dev, "ingress"]) if ingress else []
        out[dev] = {"root": _root(qdiscs), "redirect": _redirect(filters)}
    return out
