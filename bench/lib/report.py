"""Tables (text and markdown), number formatting and targets: what every section reports with."""

from __future__ import annotations

import math


def fmt(x, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, str):
        return x
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.{max(digits, 2)}f}"


def med(d: dict | None):
    return d.get("median_ms") if isinstance(d, dict) else None


def p95(d: dict | None):
    return d.get("p95_ms") if isinstance(d, dict) else None


def ratio(a, b) -> str:
    if a is None or b is None or not b:
        return "-"
    return f"{a / b:.2f}x"


def target(name: str, value, threshold: str, ok: bool | None, detail: str = "") -> dict:
    """One target: what is compared, the measured value, the threshold, PASS, MISS or n/a."""
    return {"target": name, "measured": value, "threshold": threshold,
            "result": "n/a" if ok is None else ("PASS" if ok else "MISS"), "detail": detail}


class Table:
    def __init__(self, title: str, columns: list[str]):
        self.title, self.columns, self.rows, self.notes = title, columns, [], []

    def add(self, *cells) -> None:
        self.rows.append([c if isinstance(c, str) else fmt(c) for c in cells])

    def text(self) -> str:
        widths = [max(len(str(r[i])) for r in [self.columns, *self.rows]) for i in range(len(self.columns))]

        def line(cells):
            return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                             for i, (c, w) in enumerate(zip(cells, widths)))

        out = [self.title, line(self.columns), line(["-" * w for w in widths])]
        out += [line(r) for r in self.rows]
        out += [f"  note: {n}" for n in self.notes]
        return "\n".join(out)

    def markdown(self) -> str:
        out = [f"**{self.title}**", "", "| " + " | ".join(self.columns) + " |",
               "|" + "|".join(["---"] + ["---:"] * (len(self.columns) - 1)) + "|"]
        out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in self.rows]
        if self.notes:
            out += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(out)


def targets_table(targets: list[dict]) -> Table:
    t = Table("Targets", ["target", "measured", "threshold", "result"])
    for x in targets:
        t.add(x["target"], str(x["measured"]), x["threshold"], x["result"] + (f" ({x['detail']})" if x["detail"] else ""))
    return t


def status_table(title: str, res: dict) -> Table:
    """A section that did not run (skipped) or failed: say so where its table would be."""
    t = Table(title, ["status", "reason"])
    t.add("ERROR" if res.get("status") == "error" else res.get("status", "?"),
          (res.get("error") or res.get("reason") or "")[:300])
    return t
