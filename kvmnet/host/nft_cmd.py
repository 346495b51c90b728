"""Run an nft command: through libnftables in this process when it loads, else the `nft` CLI.

`nft` is a thin command line over libnftables (Debian's nftables package depends on
libnftables1): the same library call with the same output flags gives the same output and the
same error text. In-process it costs ~0.1 ms where starting `nft` costs 2-5 ms (exec and
dynamic linking), and a cold apply runs it four times. A fresh context per command: no cache
carried from one command to the next, as with separate processes. KVMNET_NFT_CLI=1 forces
the CLI (tests compare the two)."""

from __future__ import annotations

import os
import subprocess

JSON = 1 << 4  # NFT_CTX_OUTPUT_JSON, what `nft -j` sets
TERSE = 1 << 11  # NFT_CTX_OUTPUT_TERSE, `nft -t`: sets and maps listed without their elements

_lib = None  # the loaded library; None: not tried yet; False: unavailable


def command(words: list[str], json: bool = False, terse: bool = False) -> tuple[int, str, str]:
    """(exit status, output, error text) of `nft [-j] [-t] WORDS...`."""
    if not _library():
        return _cli(["nft", *(["-j"] if json else []), *(["-t"] if terse else []), *words])
    return _run(" ".join(words), (JSON if json else 0) | (TERSE if terse else 0))


def ruleset(text: str, linger: bool = False) -> tuple[int, str, str]:
    """The same for `nft -f -` reading `text`. `linger`: free the context at exit, not now (a
    small change that removes something: see _park)."""
    if not _library():
        return _cli(["nft", "-f", "-"], text)
    return _run(text, 0, linger)


def _cli(argv: list[str], stdin: str | None = None) -> tuple[int, str, str]:
    res = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    return res.returncode, res.stdout, res.stderr


def _run(command: str, flags: int, linger: bool = False) -> tuple[int, str, str]:
    lib = _library()
    ctx = lib.nft_ctx_new(0)
    if not ctx:
        raise MemoryError("nft_ctx_new failed")
    try:
        lib.nft_ctx_output_set_flags(ctx, flags)
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)
        rc = lib.nft_run_cmd_from_buffer(ctx, command.encode())
        out = (lib.nft_ctx_get_output_buffer(ctx) or b"").decode()
        err = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode()
        return (0 if rc == 0 else 1), out, err
    finally:
        if linger:
            _park(ctx)
        else:
            lib.nft_ctx_free(ctx)


# Closing a netfilter netlink socket makes the kernel finish nf_tables' pending clean-up of what
# a commit removed, which waits for an RCU grace period: freed at once, the context that deleted
# one forward's map element took ~16 ms more. Freed at exit (or once more than a few wait, in a
# long-running process), the work is long done. Only small changes linger: a context keeps its
# cache, ~14 MB after loading a 10,000-forward table, whose one-off wait a cold apply can pay.
_parked: list = []
_PARK_MAX = 8


def _park(ctx) -> None:
    if not _parked:
        import atexit
        atexit.unregister(_free_parked)  # (once, however often the list empties)
        atexit.register(_free_parked)
    _parked.append(ctx)
    if len(_parked) > _PARK_MAX:
        _library().nft_ctx_free(_parked.pop(0))


def _free_parked() -> None:
    while _parked:
        _library().nft_ctx_free(_parked.pop(0))


def _library():
    global _lib
    if _lib is None:
        _lib = False if os.environ.get("KVMNET_NFT_CLI") == "1" else _load()
    return _lib


def _load():
    import ctypes  # here: a no-op apply that lists nothing never pays its import

    try:
        lib = ctypes.CDLL("libnftables.so.1")
    except OSError:
        return False
    ptr, text = ctypes.c_void_p, ctypes.c_char_p
    for name, res, args in (("nft_ctx_new", ptr, [ctypes.c_uint32]), ("nft_ctx_free", None, [ptr]),
                            ("nft_ctx_output_set_flags", None, [ptr, ctypes.c_uint]),
                            ("nft_ctx_buffer_output", ctypes.c_int, [ptr]),
                            ("nft_ctx_buffer_error", ctypes.c_int, [ptr]),
                            ("nft_run_cmd_from_buffer", ctypes.c_int, [ptr, text]),
                            ("nft_ctx_get_output_buffer", text, [ptr]),
                            ("nft_ctx_get_error_buffer", text, [ptr])):
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib
