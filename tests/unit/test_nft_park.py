"""host/nft_cmd.py frees each libnftables context late: at exit, or once more than a few wait
(closing a netfilter socket right after a removal waits for the kernel's clean-up of it)."""

from kvmnet.host import nft_cmd


class FakeLib:
    def __init__(self):
        self.made, self.freed = 0, []

    def nft_ctx_new(self, flags):
        self.made += 1
        return self.made

    def nft_ctx_free(self, ctx):
        self.freed.append(ctx)

    def nft_run_cmd_from_buffer(self, ctx, text):
        return 0

    def nft_ctx_get_output_buffer(self, ctx):
        return b"out"

    nft_ctx_get_error_buffer = nft_ctx_get_output_buffer

    def __getattr__(self, name):  # the output flag setters
        return lambda *args: 0


def test_contexts_are_freed_late_and_never_pile_up(monkeypatch):
    lib = FakeLib()
    monkeypatch.setattr(nft_cmd, "_lib", lib)
    monkeypatch.setattr(nft_cmd, "_parked", [])
    assert nft_cmd.ruleset("delete element inet t m { 80 }\n") == (0, "out", "out")
    assert nft_cmd.command(["list", "tables"]) == (0, "out", "out")
    assert lib.freed == []  # (freed at once, the second would have waited for the first's clean-up)
    for _ in range(nft_cmd._PARK_MAX):
        nft_cmd.command(["list", "tables"])
    assert lib.freed == [1, 2] and len(nft_cmd._parked) == nft_cmd._PARK_MAX  # the oldest go first
    nft_cmd._free_parked()  # (at exit)
    assert sorted(lib.freed) == list(range(1, lib.made + 1)) and nft_cmd._parked == []
