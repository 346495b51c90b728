"""Errors that carry what a user needs to act: where, what, why."""

from __future__ import annotations

class Problem:
    """One thing wrong with an input: where (file, line, key path) and why. (A plain class:
    errors are imported on QEMU's hook path, where dataclasses' import cost shows.)"""

    __slots__ = ("file", "line", "path", "reason")

    def __init__(self, file: str, line: int | None, path: str, reason: str):
        self.file, self.line, self.path, self.reason = file, line, path, reason

    def __eq__(self, other) -> bool:
        return isinstance(other, Problem) and str(self) == str(other)

    def __repr__(self) -> str:
        return f"Problem({str(self)!r})"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.reason}" if self.path else f"{where}: {self.reason}"


class KvmnetError(Exception):
    """Base class. exit_code is what the CLI exits with."""

    exit_code = 1


class InputError(KvmnetError):
    """Bad input (topology file, arguments, a conflict with the host found before any change)."""

    exit_code = 2

    def __init__(self, problems: list[Problem] | str):
        if isinstance(problems, str):
            problems = [Problem("", None, "", problems)]
        self.problems = problems
        super().__init__("\n".join(str(p).lstrip(": ") for p in problems))


class HostError(KvmnetError):
    """A change on the host failed; `rolled_back` says what was undone."""

    exit_code = 1

    def __init__(self, message: str, rolled_back: list[str] | None = None):
        self.rolled_back = rolled_back or []
        super().__init__(message)
