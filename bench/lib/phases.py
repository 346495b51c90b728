"""Run one kvmnet command in this process and say where its time went, without editing kvmnet.

    python bench/lib/phases.py OUT.json [--] KVMNET-ARGS...    (e.g. apply topologies/nat.toml)

It runs kvmnet's own click entry point (`kvmnet.cli.main`), exactly the code path of the
`kvmnet` command, after wrapping the functions kvmnet's engine calls through module attributes
(config.load, apply.observe/planner/choose_backend, the host observers, the renderers,
host.executor.run, record.save...). Each wrapper charges its *self* time (time not spent in a
nested wrapper) to a bucket, so buckets add up to the process's in-process time. Imports are
charged to "imports" wherever they happen (kvmnet.cli at start, pyroute2 lazily at the first
netlink call), through a wrapper of builtins.__import__.

Anything kvmnet renames or removes is reported under "not_instrumented" (and its time lands in
the enclosing bucket), so the driver keeps working while kvmnet changes; whatever kvmnet does
at run time is what gets measured. Executor steps are bucketed by the prefix of their op
(bridge./tap./link./links./addr./route. -> netlink, sysctl., firewall./fwaccept., dnsmasq.).
"""

import time

T0 = time.perf_counter()

import builtins  # noqa: E402
import sys  # noqa: E402

_perf = time.perf_counter


class Acct:
    def __init__(self):
        self.stack: list[str] = []
        self.mark = _perf()
        self.buckets: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def push(self, name: str) -> None:
        now = _perf()
        if self.stack:
            top = self.stack[-1]
            self.buckets[top] = self.buckets.get(top, 0.0) + now - self.mark
        self.stack.append(name)
        self.calls[name] = self.calls.get(name, 0) + 1
        self.mark = now

    def pop(self) -> None:
        now = _perf()
        top = self.stack.pop()
        self.buckets[top] = self.buckets.get(top, 0.0) + now - self.mark
        self.mark = now


ACCT = Acct()
STATE = {"executed": False}
OPS: dict[str, int] = {}
IMPORTS: dict[str, float] = {}  # top-level import statement -> seconds (first time only matters)
MISSING: list[str] = []

_orig_import = builtins.__import__


def _timed_import(name, globals=None, locals=None, fromlist=(), level=0):
    if ACCT.stack and ACCT.stack[-1] == "imports":
        return _orig_import(name, globals, locals, fromlist, level)
    # fast path: an already-imported absolute module costs nothing worth a bucket switch
    if level == 0 and not fromlist and name in sys.modules:
        return _orig_import(name, globals, locals, fromlist, level)
    t = _perf()
    ACCT.push("imports")
    try:
        return _orig_import(name, globals, locals, fromlist, level)
    finally:
        ACCT.pop()
        dt = _perf() - t
        if dt > 0.0005:
            key = ("." * level) + name
            IMPORTS[key] = IMPORTS.get(key, 0.0) + dt


def _prefix() -> str:
    return "verify: " if STATE["executed"] else ""


def _exec_bucket(step, *a, **k) -> str:
    STATE["executed"] = True
    op = getattr(step, "op", "?")
    OPS[op] = OPS.get(op, 0) + 1
    head = op.split(".", 1)[0]
    if head in ("bridge", "tap", "link", "links", "addr", "route"):
        return "exec: netlink"
    if head == "sysctl":
        return "exec: sysctl"
    if head in ("firewall", "fwaccept"):
        return "exec: firewall"
    if head == "dnsmasq":
        return "exec: dnsmasq"
    return f"exec: other ({op})"


def wrap(module_name: str, attr: str, bucket) -> None:
    """Replace module.attr by a wrapper charging its self time to bucket (a name, or a function of
    the call's arguments returning a name, or None to leave the time to the caller's bucket)."""
    try:
        module = sys.modules.get(module_name) or __import__(module_name, fromlist=["_"])
    except Exception:
        MISSING.append(f"{module_name} (import failed)")
        return
    orig = getattr(module, attr, None)
    if orig is None or not callable(orig):
        MISSING.append(f"{module_name}.{attr}")
        return

    def wrapper(*args, **kwargs):
        name = bucket(*args, **kwargs) if callable(bucket) else bucket
        if name is None:
            return orig(*args, **kwargs)
        ACCT.push(name)
        try:
            return orig(*args, **kwargs)
        finally:
            ACCT.pop()

    wrapper.__wrapped__ = orig
    setattr(module, attr, wrapper)


def _inside_exec() -> bool:
    return any(b.startswith("exec: ") for b in ACCT.stack)


def _obs(label: str):
    return lambda *a, **k: None if _inside_exec() else _prefix() + "observe: " + label


def instrument() -> None:
    wrap("kvmnet.config", "load", "config: parse + validate")
    wrap("kvmnet.config", "file_warnings", "config: parse + validate")
    for fn in ("load", "save", "all_records", "clear_stale", "remove"):
        wrap("kvmnet.engine.record", fn, lambda *a, **k: None if _inside_exec() else "state record (json, fsync)")
    wrap("kvmnet.engine.transaction", "choose_backend", "observe: choose backend (nft list tables)")
    wrap("kvmnet.engine.transaction", "observe", lambda *a, **k: _prefix() + "observe: other")
    wrap("kvmnet.engine.transaction", "planner", lambda *a, **k: _prefix() + "plan")
    wrap("kvmnet.engine.hostcheck", "conflicts", "plan: host conflict check")
    for fn in ("read_links", "read_addrs", "read_routes"):
        wrap("kvmnet.host.netlink", fn, _obs("netlink dumps"))
    wrap("kvmnet.host.firewall", "observe", _obs("firewall (nft list)"))
    wrap("kvmnet.host.firewall", "nft_available", "observe: choose backend (nft list tables)")
    wrap("kvmnet.host.coexist", "observe", _obs("iptables -S FORWARD (coexist)"))
    wrap("kvmnet.host.dnsmasq", "observe", _obs("dnsmasq"))
    wrap("kvmnet.host.procs", "listening", _obs("listening sockets"))
    wrap("kvmnet.render.nft", "render", lambda *a, **k: _prefix() + "plan: render nft")
    wrap("kvmnet.render.dnsmasq", "render", lambda *a, **k: _prefix() + "plan: render dnsmasq")
    wrap("kvmnet.host.executor", "run", _exec_bucket)


def group(bucket: str) -> str:
    """Buckets -> the phases of the report table."""
    if bucket == "imports":
        return "imports"
    if bucket.startswith("verify: "):
        return "verify (observe + plan again)"
    if bucket.startswith("observe: "):
        return "observe"
    if bucket == "plan" or bucket.startswith("plan: "):
        return "plan"
    if bucket.startswith("config: "):
        return "config"
    if bucket == "exec: netlink":
        return "netlink"
    if bucket == "exec: sysctl":
        return "sysctl"
    if bucket == "exec: firewall":
        return "firewall"
    if bucket == "exec: dnsmasq":
        return "dnsmasq"
    if bucket.startswith("exec: "):
        return "other steps"
    if bucket.startswith("state record"):
        return "state record"
    return "other python"


def main() -> int:
    argv = sys.argv[1:]
    out_path = argv.pop(0)
    if argv and argv[0] == "--":
        argv.pop(0)
    before = set(sys.modules)
    builtins.__import__ = _timed_import
    ACCT.push("other python")
    ACCT.push("imports")
    t = _perf()
    import kvmnet.cli  # noqa: F401  (what the `kvmnet` command imports first)
    IMPORTS["kvmnet.cli (click, kvmnet)"] = _perf() - t
    # kvmnet's own lazily imported modules, so they can be wrapped (cheap: pyroute2 and iptc
    # stay lazy, they are only imported inside functions)
    for name in ("kvmnet.engine.transaction", "kvmnet.config", "kvmnet.engine.record", "kvmnet.engine.hostcheck", "kvmnet.host.netlink",
                 "kvmnet.host.firewall", "kvmnet.host.coexist", "kvmnet.host.dnsmasq", "kvmnet.host.procs",
                 "kvmnet.render.nft", "kvmnet.render.dnsmasq", "kvmnet.host.executor"):
        try:
            __import__(name)
        except Exception:
            pass
    ACCT.pop()
    instrument()
    import io
    import contextlib
    rc = 0
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        try:
            kvmnet.cli.main(argv, prog_name="kvmnet", standalone_mode=False)
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except Exception as exc:  # click's own exceptions in non-standalone mode
            print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
            rc = 1
    ACCT.pop()
    total = _perf() - T0
    builtins.__import__ = _orig_import
    import json

    phases: dict[str, float] = {}
    for bucket, secs in ACCT.buckets.items():
        phases[group(bucket)] = phases.get(group(bucket), 0.0) + secs
    loaded = sorted(set(sys.modules) - before - {"json", "io", "contextlib"})
    result = {
        "argv": argv, "rc": rc, "output": sink.getvalue()[-2000:],
        "total_s": total,
        "phases_s": phases,
        "buckets_s": ACCT.buckets,
        "calls": ACCT.calls,
        "ops": OPS,
        "imports_s": dict(sorted(IMPORTS.items(), key=lambda kv: -kv[1])[:15]),
        "not_instrumented": MISSING,
        "modules": loaded,
    }
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)
    return rc


if __name__ == "__main__":
    sys.exit(main())
