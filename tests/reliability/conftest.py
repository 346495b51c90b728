"""The reliability suite reports figures: each scenario records (trials, passed), and the run
ends with a table of them. Every scenario also asserts, so a failed trial fails the test."""

import pytest

_ROWS: list[tuple[str, int, int, str]] = []


class Report:
    def add(self, scenario: str, trials: int, passed: int, note: str = "") -> None:
        _ROWS.append((scenario, trials, passed, note))


@pytest.fixture(scope="session")
def report():
    return Report()


def pytest_terminal_summary(terminalreporter):
    if not _ROWS:
        return
    w = max(len(r[0]) for r in _ROWS)
    terminalreporter.section("kvmnet reliability summary")
    terminalreporter.write_line(f"{'scenario':<{w}}  trials  passed  rate  note")
    for scenario, trials, passed, note in _ROWS:
        rate = f"{100 * passed // trials}%" if trials else "-"
        terminalreporter.write_line(f"{scenario:<{w}}  {trials:>6}  {passed:>6}  {rate:>4}  {note}")
