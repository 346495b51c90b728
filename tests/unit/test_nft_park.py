"""host/nft_cmd.py frees a small change's libnftables context late: at exit, or once more than a
few wait (closing a netfilter socket right after a removal waits for the kernel's clean-up of
it); every other context (listings, whole tables: big caches) as its command ends."""

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


def test_small_changes_are_freed_late_and_never_pile_up(monkeypatch):
    lib = FakeLib()
    monkeypatch.setattr(nft_cmd, "_lib", lib)
    monkeypatch.setattr(nft_cmd, "_parked", [])
    assert nft_cmd.ruleset("delete element inet t m { 80 }\n", linger=True) == (0, "out", "out")
    assert lib.freed == []  # (freed at once, it would have waited for the kernel's clean-up)
    assert nft_cmd.command(["list", "tables"]) == (0, "out", "out")
    nft_cmd.ruleset("table inet t {}\n")
    assert lib.freed == [2, 3]  # a listing's and a whole table's contexts (their caches) go at once
    for _ in range(nft_cmd._PARK_MAX):
        nft_cmd.ruleset("add element inet t m { 81 }\n", linger=True)
    assert lib.freed == [2, 3, 1] and len(nft_cmd._parked) == nft_cmd._PARK_MAX  # the oldest first
    nft_cmd._free_parked()  # (at exit)
    assert sorted(lib.freed) == list(range(1, lib.made + 1)) and nft_cmd._parked == []
