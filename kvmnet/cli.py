"""The command line: parse, call the engine, print, exit. The only module that prints or exits."""

from __future__ import annotations

import gc

_GC_WAS_ON = gc.isenabled()
gc.disable()  # while importing: a start-up makes no garbage, and its collections cost ~4 ms of a cold apply

import os  # noqa: E402
import sys  # noqa: E402

if __name__ == "__main__":  # `python -m kvmnet.cli`, as the tests run it: as kvmnet/entry.py does
    from kvmnet import cli_prestart

    cli_prestart.maybe_start(sys.argv)  # before the imports below: they run while pyroute2 loads

import click  # noqa: E402

from . import engine
from .engine import record as records, statedir
from . import __version__, cli_complete, cli_lazy, exitcodes
from .cli_common import add_host_option, echo_json as _json, fail as _fail, host_json, host_words, load as _load, networks_summary
from .cli_common import inside_qemu as _inside_qemu, locked as _locked, need_root as _need_root, print_actions as _print_actions
from . import cli_common
from .errors import InputError, KvmnetError


@click.group(cls=cli_lazy.LazyGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog=exitcodes.text())
@click.option("--state-dir", envvar="KVMNET_STATE_DIR", default=None,
              help="Where kvmnet keeps its records (default /run/kvmnet, or /run/kvmnet/netns/NAME in a named netns).")
@click.option("--qemu-conf-dir", envvar="KVMNET_QEMU_CONF_DIR", default=None,
              help="Where qemu-bridge-helper's bridge.conf is (default /etc/qemu).")
@click.version_option(__version__)  # not the installed metadata: importlib.metadata is ~20 ms of start-up
@click.pass_context
def main(ctx, state_dir, qemu_conf_dir):
    """Declarative network topologies for QEMU/KVM hosts."""
    ctx.obj = statedir.resolve(state_dir)
    if qemu_conf_dir:  # host/qemu_acl.py reads it where the engine asks
        os.environ["KVMNET_QEMU_CONF_DIR"] = os.path.abspath(qemu_conf_dir)
    cli_lazy.settle_tries(ctx)
    cli_lazy.freeze_at_exit()


@main.command()
@click.argument("file", type=click.Path(dir_okay=False), shell_complete=cli_complete.complete_topology)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success; the exit code says it.")
def validate(file, quiet):
    """Check FILE alone, without looking at this host (`kvmnet plan FILE` checks it against the host)."""
    try:
        topo = _load(file)
    except KvmnetError as exc:
        _fail(exc)
    if quiet:
        return
    nets = networks_summary(topo)  # (a multi-host file: its hosts, what each stretched network spans)
    # the file alone: an uplink, routes or ports of this host are plan's to check, so say so
    click.echo(f"{file}: file ok: topology {topo.name}; networks: {nets}; guests: {len(topo.guests)}")
    click.echo(f"  run `kvmnet plan {file}` to check it against this host")


@main.command("plan")
@click.argument("file", type=click.Path(dir_okay=False), shell_complete=cli_complete.complete_topology)
@click.option("--firewall", type=click.Choice(["nftables", "iptables"]), default=None,
              help="Firewall backend (default: the file's `firewall`, else nftables where `nft` works).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--replace", is_flag=True,
              help="FILE's topology name is applied here from another file: replace what that file made.")
@click.pass_obj
def plan_cmd(state_root, file, as_json, firewall=None, replace=False):
    """Show the steps `apply` would take; change nothing."""
    topo, ctx = _locked(state_root, file, lambda topo: engine.Context(topo, state_root, firewall, replace=replace),
                        shared=True)
    actions = ctx.actions
    if as_json:
        _json({"topology": topo.name, "firewall": ctx.backend, **host_json(ctx), "steps": [a.to_json() for a in actions]})
    elif actions:
        _print_actions(actions, f"{topo.name}: {len(actions)} step(s) to apply {file}{host_words(ctx)} (firewall: {ctx.backend}):")
    else:
        click.echo(_inside_qemu(topo, file) or f"{topo.name}: in sync with {file}{host_words(ctx)}; nothing to do (firewall: {ctx.backend})")


@main.command("apply")
@click.argument("file", type=click.Path(dir_okay=False), shell_complete=cli_complete.complete_topology)
@click.option("--firewall", type=click.Choice(["nftables", "iptables"]), default=None,
              help="Firewall backend (default: the file's `firewall`, else nftables where `nft` works).")
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")
@click.option("--replace", is_flag=True,
              help="FILE's topology name is applied here from another file: replace what that file made.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors; the exit code says it.")
@click.pass_obj
@click.pass_context
def apply_cmd(ctx, state_root, file, firewall, dry_run, replace, quiet):
    """Make the host match FILE (a transaction: all steps, or none)."""
    if dry_run:
        ctx.invoke(plan_cmd, file=file, as_json=False, firewall=firewall, replace=replace)
        return
    cli_common.apply_file(state_root, file, firewall, replace, quiet)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False), shell_complete=cli_complete.complete_topology)
@click.option("--keep-leases", is_flag=True,
              help="Keep dnsmasq's lease files (the next apply hands guests the same addresses).")
@click.option("--force", is_flag=True,
              help="The state record is lost or corrupt: remove what kvmnet creates for FILE, by kvmnet's own names.")
@click.pass_obj
def destroy(state_root, file, force, keep_leases):
    """Remove everything kvmnet created for FILE, and nothing else."""
    _need_root("destroy")
    if force:  # kvmnet's names for everything in FILE: the whole topology
        topo, result = _locked(state_root, file, lambda topo: engine.destroy(
            topo.name, state_root, engine.forced_record(topo, state_root), keep_leases=keep_leases))
        name = topo.name
    else:  # the record says what to undo: only the name is needed
        name, result = _locked(state_root, file, lambda name: engine.destroy(name, state_root, keep_leases=keep_leases),
                               load=cli_common.load_name)
    n = len(result.actions)
    if not n:
        # --force names only what it found (nothing); without it, nothing was recorded
        click.echo(f"{name}: nothing of {file}'s was on this host" if force else f"{name}: nothing to destroy")
        return
    _print_actions(result.actions, f"{name}: destroyed ({n} step(s))")


@main.command()
@click.argument("file", type=click.Path(dir_okay=False), shell_complete=cli_complete.complete_topology)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing; exit 0 in sync, 1 drifted.")
@click.pass_obj
def check(state_root, file, as_json, quiet):
    """Exit 0 if the host matches FILE, 1 (listing the differences) if it drifted."""
    topo, ctx = _locked(state_root, file, lambda topo: engine.Context(topo, state_root), shared=True)
    drift = [{"key": a.key, "repair": a.do.describe()} for a in ctx.actions]
    if quiet:
        pass
    elif as_json:
        _json({"topology": topo.name, "in_sync": not drift, "drift": drift})
    elif drift:
        click.echo(f"{topo.name}: drifted from {file}; `kvmnet apply` would:")
        for d in drift:
            click.echo(f"  {d['key']}: {d['repair']}")
    else:
        click.echo(f"{topo.name}: in sync with {file}")
    sys.exit(1 if drift else 0)


@main.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False), shell_complete=cli_complete.complete_topology)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("-q", "--quiet", is_flag=True,
              help="Print nothing; exit 0 if FILE's topology (without FILE: any) is applied and in sync, else 1.")
@click.pass_obj
def status(state_root, file, as_json, quiet):
    """What kvmnet has applied here (and, with FILE, whether the host still matches it)."""
    if file and not as_json:
        try:
            note = _inside_qemu(_load(file), file)
        except KvmnetError as exc:
            _fail(exc)
        if note:
            click.echo(note)
            return
    from .engine import overlay_status
    corrupt = []  # a topology's bad record is listed as such, and blocks no other
    try:
        topo = _load(file) if file else None  # a bad FILE is exit 2 even with nothing applied
        with statedir.locked(state_root, shared=True):
            recs = records.all_records(state_root, corrupt=corrupt)
            out = []
            for rec in recs:
                item = {"topology": rec.topology, "file": rec.file, "objects": len(rec.entries),
                        "firewall": rec.firewall_backend}
                if topo:
                    if topo.name != rec.topology:
                        continue
                    _, _, actions = engine.compute(topo, state_root)
                    item["drift"] = [a.do.describe() for a in actions]
                out.append(overlay_status.with_overlay(item, rec, state_root))  # stretched: BGP, remote MACs
    except KvmnetError as exc:
        _fail(exc)
    bad = [{"topology": os.path.basename(os.path.dirname(c.path)), "corrupt": str(c)} for c in corrupt]
    bad = [b for b in bad if topo is None or b["topology"] == topo.name]
    if quiet:
        sys.exit(0 if out and not bad and not any(item.get("drift") for item in out) else exitcodes.FAILED)
    if as_json:
        _json({"state_dir": state_root, "topologies": out + bad})
        return
    for item in bad:
        click.echo(f"{item['topology']}: {item['corrupt']}")
    if not out and not bad:
        click.echo(f"nothing applied (state dir {state_root})")
    for item in out:
        line = f"{item['topology']}: {item['objects']} object(s) from {item['file']} (firewall: {item['firewall'] or 'none'})"
        if "drift" in item:
            line += "; in sync" if not item["drift"] else f"; drifted: {'; '.join(item['drift'])}"
        click.echo(line + overlay_status.words(item))


@main.command()
@click.argument("network", required=False, shell_complete=cli_complete.complete_applied_network)
@click.option("--json", "as_json", is_flag=True, help="Print the leases as JSON.")
@click.pass_obj
def leases(state_root, network, as_json):
    """DHCP leases handed out by kvmnet's dnsmasq (all networks, or NETWORK)."""
    from .host import leases as lease_files
    from . import naming
    found, corrupt = [], []
    try:
        with statedir.locked(state_root, shared=True):
            recs = records.all_records(state_root, corrupt=corrupt)
        for rec in recs:
            tdir = naming.state_dir_for(rec.topology, state_root)
            for net in lease_files.networks_in(tdir):
                if network in (None, net):
                    found += [dict(lease, topology=rec.topology, network=net) for lease in lease_files.read(tdir, net)]
    except KvmnetError as exc:
        _fail(exc)
    for bad in corrupt:  # the others' leases still count; say which topology could not be read
        click.echo(f"kvmnet: {bad}", err=True)
    if as_json:
        _json({"leases": found})
        return
    for lease in found:
        click.echo(f"{lease['network']:<12} {lease['ip']:<16} {lease['mac'] or '-':<17}  {lease['hostname'] or '-'}")
    if not found:
        click.echo("no leases")


@main.command("qemu-args")
@click.argument("file", type=click.Path(dir_okay=False), shell_complete=cli_complete.complete_topology)
@click.argument("guest", shell_complete=cli_complete.complete_guest)
@click.option("--syntax", type=click.Choice(["netdev", "legacy"]), default="netdev",
              help="-netdev/-device pairs, or the legacy -net nic -net tap form.")
@click.option("--hooks", is_flag=True, help="script=/downscript= run kvmnet-ifup/-ifdown (QEMU makes the tap).")
@click.option("--json", "as_json", is_flag=True, help="Print the NICs and their arguments as JSON.")
@click.option("--helper", is_flag=True,
              help="-netdev bridge through qemu-bridge-helper (networks with allow_unprivileged = true): QEMU runs unprivileged.")
@click.pass_obj
def qemu_args(state_root, file, guest, syntax, hooks, as_json, helper=False):
    """Print the QEMU network arguments for GUEST's NICs, one NIC per line."""
    import shlex
    from .render.qemu import guest_args
    from .render.qemu_tuning import guest_wide
    from .engine.qemu_command import bridge_offers, offers
    try:
        topo = _load(file)
        if guest not in {g.name for g in topo.guests}:
            raise InputError(f"{file}: no guest {guest!r}")
        g = topo.guest(guest)
        base = offers("kvm", state_root, topo.name)
        fragments = guest_args(topo, g, syntax, hooks, bridge_offers(base) if helper else base)
        opened = _direct_devices(topo, guest)
        whole = guest_wide(g)
    except KvmnetError as exc:
        _fail(exc)
    if as_json:
        _json({"guest": guest, "nics": [{"network": n.network, "mac": n.mac, "tap": n.tap, "args": f}
                                        for n, f in zip(g.nics, fragments)],
               **({"open": [{"fd": fd, "device": dev} for fd, dev in opened]} if opened else {}),
               **({"guest_args": whole} if whole else {})})  # `-nic none`: not a NIC's
    else:
        for fragment in fragments + ([whole] if whole else []):
            click.echo(shlex.join(fragment))
        if opened:  # stderr: $(kvmnet qemu-args ...) stays the arguments alone
            click.echo("kvmnet: QEMU must be started with its macvtaps open: "
                       + " ".join(f"{fd}<>{dev}" for fd, dev in opened), err=True)


def _direct_devices(topo, guest: str) -> list[tuple[int, str]]:
    """A direct network's macvtaps, as QEMU is handed them (only once they exist)."""
    if not any(topo.network(n.network).mode == "direct" for n in topo.guest(guest).nics):
        return []
    from .engine.qemu_command import direct_devices
    return direct_devices(topo, guest)


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("file", type=click.Path(dir_okay=False), shell_complete=cli_complete.complete_topology)
@click.argument("guest", shell_complete=cli_complete.complete_guest)
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
    from . import cli_passt
    try:
        topo = _load(file)
        launch = runner.build(topo, guest, list(qemu_extra), syntax, hooks, accel, state_root)
        for note in launch.notes:
            click.echo(f"kvmnet: {note}", err=True)
        click.echo(f"kvmnet: {'would run' if dry_run else 'running'}: {shlex.join(launch.argv)}", err=True)
        if dry_run:
            return
        if any(n.bridged or n.mode in ("direct", "vde") for n in topo.networks):  # vde: kvmnet runs its switch
            _need_root("run")
            with statedir.locked(state_root):
                engine.apply(topo, state_root)
        fds = cli_common.open_direct(_direct_devices(topo, guest))
        stop_passt = cli_passt.around_qemu(topo, guest, state_root, dry_run)  # before QEMU, stopped after it
    except KvmnetError as exc:
        _fail(exc)
    except OSError as exc:
        click.echo(f"kvmnet: cannot open a macvtap for QEMU: {exc}", err=True)
        sys.exit(1)
    try:
        proc = subprocess.Popen(launch.argv, pass_fds=fds)
    except OSError as exc:
        stop_passt()
        click.echo(f"kvmnet: QEMU failed to start: {exc}", err=True)
        sys.exit(1)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: proc.send_signal(signum))
    status = proc.wait()
    stop_passt()
    sys.exit(status)


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


add_host_option(main, ("plan", "apply", "destroy", "check", "status", "run"))  # (before main() below runs)
gc.freeze()  # what was imported is never garbage: no collection need look at it (see cli_lazy.freeze_at_exit)
if _GC_WAS_ON:
    gc.enable()

if __name__ == "__main__":
    main(prog_name="kvmnet")  # so completion's variable is _KVMNET_COMPLETE here too
