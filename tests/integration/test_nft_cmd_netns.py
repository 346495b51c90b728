"""libnftables in kvmnet's process (host/nft_cmd.py) says what the `nft` CLI says: the same
listings (text and JSON), the same load, the same refusal, the same exit status."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import json, sys
from kvmnet.host import nft_cmd
out = {}
for name, words, as_json in (("text", ["list", "table", "inet", "kvmnet_natlab"], False),
                             ("json", ["list", "table", "inet", "kvmnet_natlab"], True),
                             ("missing", ["list", "table", "inet", "nothing_here"], False)):
    out[name] = nft_cmd.command(words, json=as_json)[:2]
out["bad"] = nft_cmd.ruleset("table inet kvmnet_bad { chain c { type nonsense; } }\\n")[0]
out["load"] = nft_cmd.ruleset("table inet kvmnet_extra {\\n set s {\\n  type ipv4_addr\\n }\\n}\\n")[0]
print(json.dumps({**out, "library": bool(nft_cmd._library())}))
"""


def _probe(netns, cli: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KVMNET_NFT_CLI": "1" if cli else "0"}
    res = subprocess.run(["ip", "netns", "exec", netns.name, sys.executable, "-c", PROBE],
                         capture_output=True, text=True, env=env, check=True)
    netns.run("nft", "delete table inet kvmnet_extra", check=False)
    return json.loads(res.stdout)


def test_library_and_cli_say_the_same(netns):
    topology = ROOT / "tests" / "data" / "topologies" / "nat-lab.toml"
    netns.add_uplink()
    assert netns.kvmnet("apply", str(topology)).returncode == 0
    lib, cli = _probe(netns, cli=False), _probe(netns, cli=True)
    assert lib.pop("library") and not cli.pop("library")
    assert lib["text"][0] == 0 and "kvmnet_natlab" in lib["text"][1]
    assert lib["missing"][0] != 0 and lib["bad"] != 0 and lib["load"] == 0
    # the same table, listed twice: the same text and JSON, handles included; error texts
    # differ only in where they point (the CLI names /dev/stdin), so exit statuses are compared
    for side in (lib, cli):
        side["json"][1] = json.loads(side["json"][1])
        side["missing"][0] = side["missing"][0] != 0
        side["bad"] = side["bad"] != 0
    assert lib == cli
    assert netns.kvmnet("destroy", str(topology)).returncode == 0


GENERATIONS = """
import json
from kvmnet.host import nft_cmd, nftgen
table = "table inet kvmnet_gen { map m { type inet_service : ipv4_addr; elements = { 80 : 10.0.0.1 }; }; }\\n"
seen = [nftgen.stamp()]
sock = nftgen._sock[0]
for change in (table, "delete element inet kvmnet_gen m { 80 }\\n", "delete table inet kvmnet_gen\\n"):
    assert nft_cmd.ruleset(change, linger=True)[0] == 0
    seen.append(nftgen.stamp())
print(json.dumps({"seen": seen, "same_socket": nftgen._sock[0] is sock, "parked": len(nft_cmd._parked)}))
"""


def test_the_kept_generation_socket_sees_every_commit(netns):
    """host/nftgen.py asks on one socket for the whole process, and nft_cmd may free a context
    late (closing a netfilter socket right after a removal waits for the kernel's clean-up):
    each commit still shows as a new generation, and the namespace's own."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run(["ip", "netns", "exec", netns.name, sys.executable, "-c", GENERATIONS],
                         capture_output=True, text=True, env=env, check=True)
    out = json.loads(res.stdout)
    boots, inodes, gens = zip(*(s.split(":") for s in out["seen"]))
    assert len(set(boots)) == 1 and inodes[0] == str(os.stat(f"/run/netns/{netns.name}").st_ino)
    assert [int(g) for g in gens] == sorted({int(g) for g in gens})  # four generations, each newer
    assert out["same_socket"] and out["parked"] == 3
    assert netns.run("nft", "list", "tables").stdout.strip() == ""
