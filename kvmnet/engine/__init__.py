"""The engine: observe the host, plan, and run plans as transactions.

`from kvmnet import engine` gives engine.apply, engine.destroy, engine.compute, engine.Context
and engine.forced_record, each taking `host=None` (the real host; tests pass a fake). They are
imported on first use: QEMU's hook imports engine.statedir and must not pay for the rest.
"""

_EXPORTS = {"apply": "transaction", "destroy": "teardown", "compute": "context", "Context": "context",
            "forced_record": "forced"}


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # (__import__ with a fromlist gives the submodule; importlib's import_module would import
    # the importlib package and warnings, ~1.5 ms of an apply)
    return getattr(__import__(f"{__name__}.{_EXPORTS[name]}", fromlist=[name]), name)
