"""kvmnet's exit codes, in one place: `kvmnet --help`, every verb's --help and the man pages
print this table, and cli.py exits only with these values."""

OK = 0
FAILED = 1  # a failure on the host (what was changed is rolled back); `check`: the host drifted
BAD_INPUT = 2  # bad input or a conflict: nothing on the host was changed

TABLE = (
    (OK, "ok (check: the host matches FILE; status --quiet: applied and in sync)"),
    (FAILED, "a failure on the host, rolled back (check, status --quiet: drifted or not applied)"),
    (BAD_INPUT, "bad input or a conflict (FILE:LINE: key: reason); nothing changed"),
)


def text() -> str:
    """The table as --help prints it (click keeps \\b paragraphs as written)."""
    return "\b\nExit codes:\n" + "\n".join(f"  {code}  {meaning}" for code, meaning in TABLE)
