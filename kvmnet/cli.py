"""The command line: parse, call the engine, print, exit. The only module that prints or exits."""

from __future__ import annotations

import json
import os
import sys

import click

from . import engine
from . import config
from .engine import record as records, statedir
from .errors import InputError, KvmnetError


def _fail(exc: KvmnetError) -> None:
    click.echo(f"kvmnet: {exc}" if not isinstance(exc, InputError) else str(exc), err=True)
    rolled = getattr(exc, "rolled_back", None)
    if rolled:
        click.echo("rolled back:", err=True)
        for line in rolled:
            click.echo(f"  {line}", err=True)
    sys.exit(exc.exit_code)


def _load(file: str):
    """config.load plus warnings about the file itself (printed, never fatal)."""
    for warning in config.file_warnings(file):
        click.echo(f"kvmnet: {warning}", err=True)
    return config.load(file)


def _locked(state_root: str, file: str, work):
    """Load FILE, then run work(topo) holding the state lock; a kvmnet error is printed and
    exits (2: bad input or a conflict, nothing changed; 1: a failure on the host)."""
    try:
        topo = _load(file)
        with statedir.locked(state_root):
            return topo, work(topo)
    except KvmnetError as exc:
        _fail(exc)


def _need_root(what: str) -> None:
    if os.geteuid() != 0:
        click.echo(f"kvmnet {what}: needs root (CAP_NET_ADMIN to change links, addresses and firewall rules); "
                   "run it with sudo", err=True)
        sys.exit(1)


def _inside_qemu(topo, file: str) -> str | None:
    """plan's and status's one wording for a topology with no bridged network: nothing of it
    is on the host to apply or to find, which is neither "in sync" nor "not applied"."""
    if any(n.bridged for n in topo.networks):
        return None
    nets = ", ".join(f"{n.name} ({n.mode})" for n in topo.networks) or "none"
    return (f"{topo.name}: nothing to apply on this host: its networks live inside QEMU ({nets}); "
            f"`kvmnet qemu-args {file} GUEST` prints a guest's options")


def _print_actions(actions, header: str) -> None:
    click.echo(header)
    for i, a in enumerate(actions, 1):
        click.echo(f"  {i:>3}. {a.do.describe()}")
        click.echo(f"       $ {a.do.command()}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--state-dir", envvar="KVMNET_STATE_DIR", default=None,
              help="Where kvmnet keeps its records (default /run/kvmnet, or /run/kvmnet/netns/NAME in a named netns).")
@click.version_option(package_name="kvmnet")
@click.pass_context
def main(ctx, state_dir):
    """Declarative network topologies for QEMU/KVM hosts."""
    ctx.obj = statedir.resolve(state_dir)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
def validate(file):
    """Check FILE alone, without looking at this host (`kvmnet plan FILE` checks it against the host)."""
    try:
        topo = _load(file)
    except KvmnetError as exc:
        _fail(exc)
    nets = ", ".join(f"{n.name} ({n.mode})" for n in topo.networks) or "none"
    # the file alone: an uplink, routes or ports of this host are plan's to check, so say so
    click.echo(f"{file}: file ok: topology {topo.name}; networks: {nets}; guests: {len(topo.guests)}")
    click.echo(f"  run `kvmnet plan {file}` to check it against this host")


@main.command("plan")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--firewall", type=click.Choice(["nftables", "iptables"]), default=None,
              help="Firewall backend (default: the file's `firewall`, else nftables where `nft` works).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.pass_obj
def plan_cmd(state_root, file, as_json, firewall=None):
    """Show the steps `apply` would take; change nothing."""
    topo, ctx = _locked(state_root, file, lambda topo: engine.Context(topo, state_root, firewall))
    actions = ctx.actions
    if as_json:
        click.echo(json.dumps({"topology": topo.name, "firewall": ctx.backend,
                               "steps": [a.to_json() for a in actions]}, indent=1))
    elif actions:
        _print_actions(actions, f"{topo.name}: {len(actions)} step(s) to apply {file} (firewall: {ctx.backend}):")
    else:
        click.echo(_inside_qemu(topo, file) or f"{topo.name}: in sync with {file}; nothing to do (firewall: {ctx.backend})")


@main.command("apply")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--firewall", type=click.Choice(["nftables", "iptables"]), default=None,
              help="Firewall backend (default: the file's `firewall`, else nftables where `nft` works).")
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")
@click.pass_obj
@click.pass_context
def apply_cmd(ctx, state_root, file, firewall, dry_run):
    """Make the host match FILE (a transaction: all steps, or none)."""
    if dry_run:
        ctx.invoke(plan_cmd, file=file, as_json=False, firewall=firewall)
        return
    _need_root("apply")
    topo, result = _locked(state_root, file, lambda topo: engine.apply(topo, state_root, firewall))
    n = len(result.actions)
    _print_actions(result.actions, f"{topo.name}: applied {n} step(s); verified in sync" if n else
                   _inside_qemu(topo, file) or f"{topo.name}: already in sync; nothing changed")


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True,
              help="The state record is lost or corrupt: remove what kvmnet creates for FILE, by kvmnet's own names.")
@click.pass_obj
def destroy(state_root, file, force):
    """Remove everything kvmnet created for FILE, and nothing else."""
    _need_root("destroy")

    def work(topo):
        return engine.destroy(topo.name, state_root, engine.forced_record(topo, state_root) if force else None)
    topo, result = _locked(state_root, file, work)
    n = len(result.actions)
    _print_actions(result.actions, f"{topo.name}: destroyed ({n} step(s))" if n else f"{topo.name}: nothing to destroy")


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def check(state_root, file, as_json):
    """Exit 0 if the host matches FILE, 1 (listing the differences) if it drifted."""
    topo, ctx = _locked(state_root, file, lambda topo: engine.Context(topo, state_root))
    drift = [{"key": a.key, "repair": a.do.describe()} for a in ctx.actions]
    if as_json:
        click.echo(json.dumps({"topology": topo.name, "in_sync": not drift, "drift": drift}, indent=1))
    elif drift:
        click.echo(f"{topo.name}: drifted from {file}; `kvmnet apply` would:")
        for d in drift:
            click.echo(f"  {d['key']}: {d['repair']}")
    else:
        click.echo(f"{topo.name}: in sync with {file}")
    sys.exit(1 if drift else 0)


@main.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def status(state_root, file, as_json):
    """What kvmnet has applied here (and, with FILE, whether the host still matches it)."""
    if file and not as_json:
        try:
            note = _inside_qemu(_load(file), file)
        except KvmnetError as exc:
            _fail(exc)
        if note:
            click.echo(note)
            return
    try:
        with statedir.locked(state_root):
            recs = records.all_records(state_root)
            out = []
            for rec in recs:
                item = {"topology": rec.topology, "file": rec.file, "objects": len(rec.entries),
                        "firewall": rec.firewall_backend}
                if file:
                    topo = _load(file)
                    if topo.name != rec.topology:
                        continue
                    _, _, actions = engine.compute(topo, state_root)
                    item["drift"] = [a.do.describe() for a in actions]
                out.append(item)
    except KvmnetError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps({"state_dir": state_root, "topologies": out}, indent=1))
        return
    if not out:
        click.echo(f"nothing applied (state dir {state_root})")
    for item in out:
        line = f"{item['topology']}: {item['objects']} object(s) from {item['file']} (firewall: {item['firewall'] or 'none'})"
        if "drift" in item:
            line += "; in sync" if not item["drift"] else f"; drifted: {'; '.join(item['drift'])}"
        click.echo(line)


@main.command()
@click.argument("network", required=False)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def leases(state_root, network, as_json):
    """DHCP leases handed out by kvmnet's dnsmasq (all networks, or NETWORK)."""
    from .host import leases as lease_files
    from . import naming
    found = []
    try:
        for rec in records.all_records(state_root):
            tdir = naming.state_dir_for(rec.topology, state_root)
            for net in lease_files.networks_in(tdir):
                if network in (None, net):
                    found += [dict(lease, topology=rec.topology, network=net) for lease in lease_files.read(tdir, net)]
    except KvmnetError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps({"leases": found}, indent=1))
        return
    for lease in found:
        click.echo(f"{lease['network']:<12} {lease['ip']:<16} {lease['mac']}  {lease['hostname'] or '-'}")
    if not found:
        click.echo("no leases")


@main.command("qemu-args")
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("guest")
@click.option("--syntax", type=click.Choice(["netdev", "legacy"]), default="netdev",
              help="-netdev/-device pairs, or the legacy -net nic -net tap form.")
@click.option("--hooks", is_flag=True, help="script=/downscript= run kvmnet-ifup/-ifdown (QEMU makes the tap).")
@click.option("--json", "as_json", is_flag=True)
def qemu_args(file, guest, syntax, hooks, as_json):
    """Print the QEMU network arguments for GUEST's NICs, one NIC per line."""
    import shlex
    from .render.qemu import guest_args
    from .engine.qemu_command import offers
    try:
        topo = _load(file)
        if guest not in {g.name for g in topo.guests}:
            raise InputError(f"{file}: no guest {guest!r}")
        g = topo.guest(guest)
        fragments = guest_args(topo, g, syntax, hooks, offers("kvm"))
    except KvmnetError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps({"guest": guest, "nics": [{"network": n.network, "mac": n.mac, "tap": n.tap, "args": f}
                                                      for n, f in zip(g.nics, fragments)]}, indent=1))
    else:
        for fragment in fragments:
            click.echo(shlex.join(fragment))


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("guest")
@click.argument("qemu_extra", nargs=-1, type=click.UNPROCESSED)
@click.option("--dry-run", is_flag=True, help="Print the command and change nothing.")
@click.option("--syntax", type=click.Choice(["netdev", "legacy"]), default="netdev")
@click.option("--hooks", is_flag=True, help="Let QEMU create the taps and call kvmnet-ifup/-ifdown.")
@click.option("--accel", type=click.Choice(["kvm", "tcg"]), default=None, help="Default: KVM if it really works here, else TCG.")
@click.pass_obj
def run(state_root, file, guest, qemu_extra, dry_run, syntax, hooks, accel):
    """Apply FILE if needed, then run GUEST under QEMU with its network arguments [-- extra QEMU args]."""
    import shlex
    import signal
    import subprocess
    from .engine import qemu_command as runner
    try:
        topo = _load(file)
        launch = runner.build(topo, guest, list(qemu_extra), syntax, hooks, accel)
        for note in launch.notes:
            click.echo(f"kvmnet: {note}", err=True)
        click.echo(f"kvmnet: {'would run' if dry_run else 'running'}: {shlex.join(launch.argv)}", err=True)
        if dry_run:
            return
        if any(n.bridged for n in topo.networks):
            _need_root("run")
            with statedir.locked(state_root):
                engine.apply(topo, state_root)
    except KvmnetError as exc:
        _fail(exc)
    try:
        proc = subprocess.Popen(launch.argv)
    except OSError as exc:
        click.echo(f"kvmnet: QEMU failed to start: {exc}", err=True)
        sys.exit(1)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: proc.send_signal(signum))
    sys.exit(proc.wait())


@main.command()
@click.argument("tap")
@click.option("--network", default=None, help="Default: $KVMNET_NETWORK, the tap's topology, or the only network.")
@click.pass_obj
def ifup(state_root, tap, network):
    """QEMU script= hook: attach TAP to its network's bridge (applying the network if needed)."""
    from . import hook
    try:
        click.echo(hook.ifup(tap, network, state_root), err=True)
    except KvmnetError as exc:
        _fail(exc)


@main.command()
@click.argument("tap")
@click.pass_obj
def ifdown(state_root, tap):
    """QEMU downscript= hook: detach TAP; the network stays for other guests."""
    from . import hook
    try:
        click.echo(hook.ifdown(tap, state_root), err=True)
    except KvmnetError as exc:
        _fail(exc)


if __name__ == "__main__":
    main()
