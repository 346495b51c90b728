"""Run one kvmnet command in this process and say where its time went, without editing kvmnet.

    python bench/lib/phases.py OUT.json [--] KVMNET-ARGS...    (e.g. apply topologies/nat.toml)

It runs kvmnet's own click entry point (`kvmnet.cli.main`), exactly the code path of the
`kvmnet` command, after wrapping the kvmnet functions listed in TARGETS (the one table of every
`module:function` the bench reaches into). Each wrapper charges its *self* time (time not spent
in a nested wrapper) to a bucket, so buckets add up to the process's in-process time. Imports
are charged to "imports" wherever they happen (kvmnet.cli at start, pyroute2 lazily at the first
netlink call), through a wrapper of builtins.__import__.

A target kvmnet renamed or moved stops the run with MissingTarget naming `module.function`:
quietly leaving it out would move its time into the caller's phase and the figures would lie.
When kvmnet moves a function, update TARGETS. `phases.py --check` only imports and resolves
every target (the bench's preflight). Executor steps are bucketed by the prefix of their op
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


# Every kvmnet function the driver wraps, "module:function" -> (rule, bucket name). Rules:
#   fixed    always this bucket
#   record   this bucket, unless called from inside an executor step (then the step's)
#   verify   this bucket, as "verify: ..." once a step has run (apply's re-observe)
#   observe  "observe: NAME" (as "verify: observe: NAME" after a step), unless inside a step
#   exec     an executor step: bucketed by its op (_exec_bucket)
TARGETS = {
    "kvmnet.config:load": ("fixed", "config: parse + validate"),
    "kvmnet.config:file_warnings": ("fixed", "config: parse + validate"),
    "kvmnet.config.loader:load_bytes": ("fixed", "config: parse + validate"),
    "kvmnet.engine.topocache:load": ("fixed", "config: read the validated-topology cache"),
    "kvmnet.engine.topocache:keep_loaded": ("fixed", "config: write the validated-topology cache"),
    "kvmnet.engine.record:load": ("record", "state record (json, fsync)"),
    "kvmnet.engine.record:save": ("record", "state record (json, fsync)"),
    "kvmnet.engine.record:all_records": ("record", "state record (json, fsync)"),
    "kvmnet.engine.record:clear_stale": ("record", "state record (json, fsync)"),
    "kvmnet.engine.record:remove": ("record", "state record (json, fsync)"),
    "kvmnet.host.backend:choose": ("fixed", "observe: choose backend (nft list tables)"),
    "kvmnet.engine.context:observe": ("verify", "observe: other"),
    "kvmnet.engine.context:make": ("verify", "plan"),
    "kvmnet.engine.hostcheck:conflicts": ("fixed", "plan: host conflict check"),
    "kvmnet.host.netlink:read_links": ("observe", "netlink dumps"),
    "kvmnet.host.netlink:read_addrs": ("observe", "netlink dumps"),
    "kvmnet.host.netlink:read_routes": ("observe", "netlink dumps"),
    "kvmnet.host.firewall:observe": ("observe", "firewall (nft list)"),
    "kvmnet.host.nftables:nft_available": ("fixed", "observe: choose backend (nft list tables)"),
    "kvmnet.host.coexist:observe": ("observe", "iptables -S FORWARD (coexist)"),
    "kvmnet.host.dnsmasq:observe": ("observe", "dnsmasq"),
    "kvmnet.host.procs:listening": ("observe", "listening sockets"),
    "kvmnet.render.nft:render": ("verify", "plan: render nft"),
    "kvmnet.render.dnsmasq:render": ("verify", "plan: render dnsmasq"),
    "kvmnet.host.executor:run": ("exec", None),
}


def target_modules() -> list[str]:
    """The kvmnet modules TARGETS reaches into, in table order."""
    return list(dict.fromkeys(t.split(":")[0] for t in TARGETS))


class MissingTarget(RuntimeError):
    """A TARGETS entry kvmnet no longer has (renamed or moved)."""


def _inside_exec() -> bool:
    return any(b.startswith("exec: ") for b in ACCT.stack)


def _rule(kind: str, name: str | None):
    """The bucket function of one TARGETS rule (None: leave the time to the caller's bucket)."""
    if kind == "fixed":
        return lambda *a, **k: name
    if kind == "record":
        return lambda *a, **k: None if _inside_exec() else name
    if kind == "verify":
        return lambda *a, **k: _prefix() + name
    if kind == "observe":
        return lambda *a, **k: None if _inside_exec() else _prefix() + "observe: " + name
    if kind == "exec":
        return _exec_bucket
    raise ValueError(f"phases.py TARGETS: unknown rule {kind!r}")


def resolve(target: str):
    """`module:function` -> (module, the function), or MissingTarget naming `module.function`."""
    module_name, attr = target.split(":")
    try:
        module = sys.modules.get(module_name) or __import__(module_name, fromlist=["_"])
    except ImportError as exc:
        raise MissingTarget(f"{module_name}.{attr}: module {module_name} does not import ({exc}); "
                            "update TARGETS in bench/lib/phases.py") from exc
    orig = getattr(module, attr, None)
    if orig is None or not callable(orig):
        raise MissingTarget(f"{module_name}.{attr}: kvmnet has no such function (renamed or moved?); "
                            "update TARGETS in bench/lib/phases.py")
    return module, orig


def wrap(target: str, bucket) -> None:
    """Replace the target by a wrapper charging its self time to bucket(*args) (None: leave the
    time to the caller's bucket)."""
    module, orig = resolve(target)

    def wrapper(*args, **kwargs):
        name = bucket(*args, **kwargs)
        if name is None:
            return orig(*args, **kwargs)
        ACCT.push(name)
        try:
            return orig(*args, **kwargs)
        finally:
            ACCT.pop()

    wrapper.__wrapped__ = orig
    setattr(module, target.split(":")[1], wrapper)


def instrument() -> None:
    for target, (kind, name) in TARGETS.items():
        wrap(target, _rule(kind, name))


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


def load_kvmnet(argv: list[str]) -> None:
    """What the `kvmnet` command imports first, then every target's module (kvmnet's lazily
    imported ones too, so they can be wrapped; pyroute2 and iptc stay lazy), charged to imports.
    First, as the command does, the netlink worker for a command that will likely change links
    (kvmnet/cli_prestart.py, here with this command's own arguments): pyroute2 then loads in it,
    and what the netlink phase still waits for it is charged there."""
    ACCT.push("imports")
    t = _perf()
    import kvmnet.cli_prestart
    kvmnet.cli_prestart.maybe_start(["kvmnet", *argv])
    import kvmnet.cli  # noqa: F401  (what the `kvmnet` command imports first)
    IMPORTS["kvmnet.cli (click, kvmnet)"] = _perf() - t
    for target in TARGETS:
        resolve(target)
    ACCT.pop()


def run_cli(argv: list[str]) -> tuple[int, str]:
    """kvmnet.cli.main as the `kvmnet` command runs it: (exit code, its output)."""
    import contextlib
    import io

    import kvmnet.cli
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
    return rc, sink.getvalue()


def check() -> int:
    """Resolve every target, wrap nothing: the bench's preflight."""
    try:
        for target in TARGETS:
            resolve(target)
    except MissingTarget as exc:
        print(f"bench/lib/phases.py: missing target {exc}", file=sys.stderr)
        return 1
    print(f"phases: all {len(TARGETS)} targets resolve")
    return 0


def main() -> int:
    argv = sys.argv[1:]
    out_path = argv.pop(0)
    if out_path == "--check":
        return check()
    if argv and argv[0] == "--":
        argv.pop(0)
    before = set(sys.modules)
    builtins.__import__ = _timed_import
    ACCT.push("other python")
    load_kvmnet(argv)
    instrument()
    rc, output = run_cli(argv)
    ACCT.pop()
    total = _perf() - T0
    builtins.__import__ = _orig_import
    import json

    phases: dict[str, float] = {}
    for bucket, secs in ACCT.buckets.items():
        phases[group(bucket)] = phases.get(group(bucket), 0.0) + secs
    result = {
        "argv": argv, "rc": rc, "output": output[-2000:],
        "total_s": total,
        "phases_s": phases,
        "buckets_s": ACCT.buckets,
        "calls": ACCT.calls,
        "ops": OPS,
        "imports_s": dict(sorted(IMPORTS.items(), key=lambda kv: -kv[1])[:15]),
        "wrapped": sorted(TARGETS),
        "modules": sorted(set(sys.modules) - before - {"json", "io", "contextlib"}),
    }
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)
    return rc


if __name__ == "__main__":
    sys.exit(main())
