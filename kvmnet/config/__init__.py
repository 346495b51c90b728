"""TOML topology files -> model.Topology (pure): every problem reported as FILE:LINE: key.path: reason.

Its names are imported on first use: a re-apply of an unchanged file takes the validated
topology from the state dir's cache (engine/topocache.py) and needs neither a TOML parser nor
the validators.
"""

_EXPORTS = {"MAX_FILE_BYTES": "loader", "file_warnings": "loader", "load": "loader", "load_text": "loader",
            "locate": "loader", "NIC_MODELS": "guests", "NETWORK_KEYS": "networks"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # (__import__ with a fromlist gives the submodule; importlib's import_module would import
    # the importlib package and warnings, ~1.5 ms of an apply)
    return getattr(__import__(f"{__name__}.{_EXPORTS[name]}", fromlist=[name]), name)
