"""scripts/lab: a lab for people. Namespaces "host" (kvmnet applies TOPOLOGY there) and "wan"
(a web server at 10.0.0.1), every guest of the topology booted as a tiny QEMU guest, then a
shell in the host namespace (or a wait for Enter); everything is torn down on the way out."""

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers.lab import Lab  # noqa: E402
from labkit.guest import skip_reason  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("topology", nargs="?", default=str(ROOT / "topologies" / "nat.toml"))
    parser.add_argument("--firewall", default="nftables", choices=["nftables", "iptables"])
    parser.add_argument("--shell", action="store_true", help="open a shell in the host namespace")
    parser.add_argument("guests", nargs="*", help="guests to boot (default: all)")
    args = parser.parse_args()
    why = skip_reason()
    if why:
        print(f"scripts/lab: cannot run here: {why}", file=sys.stderr)
        return 1
    lab = Lab(Path(args.topology).resolve(), args.firewall)
    try:
        print(lab.apply().stdout)
        names = args.guests or _guest_names(lab)
        print(f"booting {', '.join(names)} (QEMU, TCG) ...")
        for guest in lab.boot(*names):
            for nic, lease in guest.leases().items():
                print(f"  {guest.name} {nic}: {lease.get('ip') or 'no lease'} (mac {lease.get('mac')})")
        env = f"KVMNET_STATE_DIR={lab.host.state_dir}"
        print(f"\nhost namespace: {lab.host.name}   wan namespace: {lab.wan.name} (10.0.0.1, web server)")
        print(f"try: ip netns exec {lab.host.name} env {env} {sys.executable} -m kvmnet.cli status {args.topology}")
        print(f"     ip netns exec {lab.wan.name} {sys.executable} {ROOT}/tests/helpers/fetch.py http://10.0.0.2:8080/")
        if args.shell:
            subprocess.run(["ip", "netns", "exec", lab.host.name, "env", env, os.environ.get("SHELL", "bash")])
        else:
            input("\npress Enter to tear the lab down ")
    except KeyboardInterrupt:
        pass
    finally:
        lab.close()
        print("lab torn down")
    return 0


def _guest_names(lab: Lab) -> list[str]:
    from kvmnet import config
    return [g.name for g in config.load(str(lab.topology)).guests]


if __name__ == "__main__":
    sys.exit(main())
