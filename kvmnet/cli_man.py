"""Man pages (roff, man(7) macros) generated from the click definitions: kvmnet(1), listing the
verbs and global options, and kvmnet-VERB(1) for each verb. No date in the pages, so the same
kvmnet writes the same bytes (reproducible builds)."""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version

import click

from . import exitcodes


def roff(text: str) -> str:
    """Escape text for roff: backslashes, and a leading . or ' that would start a request."""
    lines = []
    for line in text.replace("\\", "\\e").replace("-", "\\-").splitlines():
        lines.append("\\&" + line if line[:1] in (".", "'") else line)
    return "\n".join(lines)


def _paragraphs(help_text: str) -> list[str]:
    """click help text -> paragraphs; \\b (click's "keep as written") paragraphs stay verbatim."""
    out = []
    for para in (help_text or "").strip().split("\n\n"):
        if para.startswith("\b\n"):
            out.append(".nf\n" + roff(para[2:]) + "\n.fi")
        else:
            out.append(roff(" ".join(line.strip() for line in para.splitlines())))
    return out


def _kvmnet_version() -> str:
    try:
        return version("kvmnet")
    except PackageNotFoundError:
        return "unknown"


def _options(ctx: click.Context) -> list[str]:
    out = []
    for param in ctx.command.get_params(ctx):
        record = param.get_help_record(ctx) if isinstance(param, click.Option) else None
        if record:
            out += [".TP", f"\\fB{roff(record[0])}\\fR", roff(record[1] or "")]
    return out


def _exit_status() -> list[str]:
    out = [".SH EXIT STATUS"]
    for code, meaning in exitcodes.TABLE:
        out += [".TP", f"\\fB{code}\\fR", roff(meaning)]
    return out


def page(command: click.Command, name: str, parent: click.Context | None, example: str | None) -> str:
    """One man page: NAME, SYNOPSIS, DESCRIPTION, OPTIONS, EXAMPLE, EXIT STATUS, SEE ALSO."""
    ctx = click.Context(command, info_name=name, parent=parent)
    title = ctx.command_path.replace(" ", "-")
    out = [f'.TH {title.upper()} 1 "" "kvmnet {_kvmnet_version()}" "kvmnet manual"',
           ".SH NAME", f"{roff(title)} \\- {roff(command.get_short_help_str(limit=200))}",
           ".SH SYNOPSIS", f"\\fB{roff(ctx.command_path)}\\fR {roff(' '.join(command.collect_usage_pieces(ctx)))}",
           ".SH DESCRIPTION"]
    for para in _paragraphs(command.help or ""):
        out += [para, ".PP"]
    out.pop()
    options = _options(ctx)
    if options:
        out += [".SH OPTIONS"] + options
    if isinstance(command, click.Group):
        out.append(".SH COMMANDS")
        for sub, cmd in sorted(command.commands.items()):
            out += [".TP", f"\\fB{roff(sub)}\\fR", roff(cmd.get_short_help_str(limit=200)) + f" See \\fBkvmnet\\-{roff(sub)}\\fR(1)."]
    if example:
        out += [".SH EXAMPLE", ".nf", ".RS", roff(example), ".RE", ".fi"]
    out += _exit_status()
    out += [".SH SEE ALSO", "\\fBkvmnet\\fR(1)" if parent else "\\fBkvmnet\\-graph\\fR(1), \\fBkvmnet\\-apply\\fR(1)"]
    return "\n".join(out) + "\n"


def write_pages(main: click.Group, directory: str, examples: dict[str, str]) -> list[str]:
    """kvmnet.1 and kvmnet-VERB.1 for every verb (nested groups' verbs as kvmnet-GROUP-VERB.1)."""
    os.makedirs(directory, exist_ok=True)
    root = click.Context(main, info_name="kvmnet")
    pages = {"kvmnet.1": page(main, "kvmnet", None, None)}
    pending = [(root, name, cmd) for name, cmd in main.commands.items()]
    while pending:
        parent, name, cmd = pending.pop(0)
        ctx_path = f"{parent.command_path} {name}"
        pages[ctx_path.replace(" ", "-") + ".1"] = page(cmd, name, parent, examples.get(ctx_path.split(" ", 1)[1]))
        if isinstance(cmd, click.Group):
            sub_parent = click.Context(cmd, info_name=name, parent=parent)
            pending += [(sub_parent, sub, c) for sub, c in cmd.commands.items()]
    for filename, text in sorted(pages.items()):
        with open(os.path.join(directory, filename), "w") as f:
            f.write(text)
    return sorted(pages)
