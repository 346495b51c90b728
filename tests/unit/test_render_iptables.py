"""The iptables backend's rules: golden files for every topology (regenerate with
KVMNET_UPDATE_GOLDEN=1), and the pure pieces of render/iptables.py and host/iptables.py
(comments, digests, the JSON form, the verdict observe() gives on a listing)."""

import json
import os
from pathlib import Path

import pytest

from kvmnet import config, naming
from kvmnet.errors import InputError
from kvmnet.host.iptables_probe import nft_rules
from kvmnet.host.iptables_read import parse_save_line
from kvmnet.render.iptables_verdict import judge
from kvmnet.render import iptables as ipt
from kvmnet.render import nft

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "data" / "render-iptables"
SOURCES = sorted(ROOT.glob("topologies/*.toml")) + sorted(ROOT.glob("tests/data/topologies/*.toml"))
NAT = ROOT / "topologies" / "nat.toml"
LAB = ROOT / "tests" / "data" / "topologies" / "nat-lab.toml"


def load(path: Path, text: str | None = None):
    return config.load_text(text if text is not None else path.read_text(), path.name)


def rendered(path: Path) -> dict[str, str]:
    topo = load(path)
    if not nft.needs_table(topo):
        return {}
    try:
        rs = ipt.render(topo)
    except InputError as exc:
        return {"iptables.txt": f"# error: {exc}\n"}
    return {"iptables.txt": f"# {rs.summary} (digest {rs.digest})\n" + rs.text()}


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_render_matches_golden(source):
    case = GOLDEN / source.stem
    out = rendered(source)
    for name, text in out.items():
        if os.environ.get("KVMNET_UPDATE_GOLDEN"):
            case.mkdir(parents=True, exist_ok=True)
            (case / name).write_text(text)
        assert text == (case / name).read_text(), f"{source.stem}/{name} differs from its golden file"
    present = {p.name for p in case.iterdir()} if case.exists() else set()
    assert present == set(out), "stale or missing golden files"


def test_no_stale_golden_directories():
    assert {p.name for p in GOLDEN.iterdir()} <= {s.stem for s in SOURCES}


def test_chains_hooks_and_names():
    rs = ipt.render(load(LAB))
    assert rs.name == naming.iptables_prefix("natlab") == "KN-natlab"
    tables = rs.to_json()["tables"]
    assert list(tables) == ["raw", "filter", "nat"]
    assert tables["raw"]["jumps"] == {"KN-natlab-GRD": ipt.jump_rule("KN-natlab-GRD")}
    assert tables["filter"]["jumps"] == {c: ipt.jump_rule(c) for c in ("KN-natlab-FWD", "KN-natlab-FWO", "KN-natlab-INP")}
    assert set(tables["nat"]["jumps"]) == {"KN-natlab-PRE", "KN-natlab-OUT", "KN-natlab-POST"}
    assert {c: ipt.chain_names(rs.name)[c][2] for c in tables["filter"]["jumps"]} == {
        "KN-natlab-FWD": "FORWARD", "KN-natlab-FWO": "FORWARD", "KN-natlab-INP": "INPUT"}
    assert rs.summary == f"chains KN-natlab-*, {rs.rules} rules, 5 forwards"
    # the digest is the first 12 hex digits of sha256 over the bare rules: lower-case hex only
    assert len(rs.digest) == 12 and set(rs.digest) <= set("0123456789abcdef")
    assert ipt.render(load(LAB)).digest == rs.digest  # and deterministic


def bare(argv: list[str]) -> str:
    """A rule as text without its kvmnet comment."""
    i = argv.index("--comment")
    return " ".join(argv[:i - 2] + argv[i + 2:])


def test_every_rule_carries_the_digest_and_the_counts():
    rs = ipt.render(load(LAB))
    for chain, rules in rs.chains.items():
        for argv in rules:
            assert ipt.parse_comment(ipt.rule_comment(argv)) == (rs.digest, len(rules), rs.rules), (chain, argv)
            i = argv.index("--comment")
            assert argv[i - 2:i] == ["-m", "comment"] and argv[i + 2] == "-j"  # where iptables-save puts it


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_same_forwards_and_networks_as_nft(source):
    topo = load(source)
    if not nft.needs_table(topo) or any(n.spoof_protection or n.subnet6 for n in topo.networks):
        return
    rs, table = ipt.render(topo), nft.render(topo, naming.nft_table(topo.name))
    assert rs.forwards == sum(table.elements.values())
    for hook, nft_chain in (("INP", "input"), ("FWD", "forward"), ("POST", "postrouting"), ("GRD", "guard")):
        assert (f"{rs.name}-{hook}" in rs.chains) == (nft_chain in table.rules), hook


def test_masquerade_matches_nft():
    rs = ipt.render(load(NAT))
    post = [bare(r) for r in rs.chains["KN-nat-POST"]]
    sub = "192.168.122.0/24"
    assert post == [
        f"-s {sub} -d 224.0.0.0/24 -j RETURN",
        f"-s {sub} -d 255.255.255.255/32 -j RETURN",
        f"-s {sub} ! -d {sub} -p tcp -j MASQUERADE --to-ports 1024-65535",
        f"-s {sub} ! -d {sub} -p udp -j MASQUERADE --to-ports 1024-65535",
        f"-s {sub} ! -d {sub} -j MASQUERADE",
        f"-s 127.0.0.0/8 -d {sub} -o virbr0 -m conntrack --ctstate DNAT -j MASQUERADE",
        f"-s {sub} -d {sub} -o virbr0 -m conntrack --ctstate DNAT -j MASQUERADE",
    ]


def _forwards(extra: str):
    """nat.toml with its forwards replaced by `extra`."""
    head, tail = NAT.read_text().split("[[networks.default.forwards]]")[0], NAT.read_text().split("[guests.web]")[1]
    return ipt.render(load(NAT, head + extra + "[guests.web]" + tail))


def _dnat(rs, chain="PRE"):
    return [ipt.save_args(r) for r in rs.chains[f"{rs.name}-{chain}"]]


def test_identical_port_range_is_one_rule_other_ranges_one_rule_per_port():
    rs = _forwards('[[networks.default.forwards]]\nhost_port = "9000-9002"\nguest = "web"\nguest_port = "9000-9002"\n'
                   '[[networks.default.forwards]]\nproto = "udp"\nhost_port = "7000-7001"\nguest = "web"\nguest_port = "53-54"\n')
    pre = _dnat(rs)
    assert len(pre) == 3 and rs.forwards == 5
    assert pre[0].startswith("-p tcp -m tcp --dport 9000:9002 -m addrtype --dst-type LOCAL")
    assert pre[0].endswith("-j DNAT --to-destination 192.168.122.10:9000-9002")
    assert pre[1].startswith("-p udp -m udp --dport 7000 ") and pre[1].endswith("192.168.122.10:53")
    assert pre[2].startswith("-p udp -m udp --dport 7001 ") and pre[2].endswith("192.168.122.10:54")
    assert _dnat(rs, "OUT") == pre


def test_host_addr_forward_matches_the_address_not_addrtype_and_comes_last():
    rs = _forwards('[[networks.default.forwards]]\nhost_port = 8081\nhost_addr = "127.0.0.1"\nguest = "web"\nguest_port = 80\n'
                   '[[networks.default.forwards]]\nhost_port = 8080\nguest = "web"\nguest_port = 80\n')
    pre = _dnat(rs)
    assert "--dport 8080" in pre[0] and "addrtype" in pre[0]
    assert pre[1].startswith("-d 127.0.0.1/32 -p tcp -m tcp --dport 8081 -m comment") and "addrtype" not in pre[1]


def test_digest_changes_with_the_rules_only():
    a, b = ipt.render(load(NAT)), ipt.render(load(NAT))
    assert a.digest == b.digest and a.to_json() == b.to_json()
    changed = ipt.render(load(NAT, NAT.read_text().replace("guest_port = 80", "guest_port = 81")))
    assert changed.digest != a.digest


def test_json_round_trip_and_save_text_round_trip():
    rs = ipt.render(load(LAB))
    data = json.loads(json.dumps(rs.to_json()))
    assert ipt.IptRuleset.from_json(data) == rs
    for line in rs.text().splitlines():
        if line.startswith("-A "):
            chain, argv = parse_save_line(line)
            assert argv in rs.chains[chain]


def test_spoof_protection_is_refused_not_dropped():
    with pytest.raises(InputError, match="spoof_protection.*nftables"):
        ipt.render(load(ROOT / "tests" / "data" / "topologies" / "antispoof.toml"))


def test_long_topology_names_keep_chain_names_within_28_characters():
    topo = load(NAT, 'name = "a_very_long_topology_nam"\n' + NAT.read_text())
    rs = ipt.render(topo)
    assert rs.name.startswith("KN-") and rs.name != "KN-a_very_long_topology_nam"
    assert all(len(c) <= 28 for c in rs.chains)


# ---- observe()'s verdict, from iptables-legacy-save-shaped snapshots (no root needed)

def _snapshot(rs):
    snap = {t: {"chains": {}, "builtins": {}} for t in ipt.TABLES}
    for table, body in rs.to_json()["tables"].items():
        snap[table]["chains"] = {c: [list(r) for r in rules] for c, rules in body["chains"].items()}
        for chain, argv in body["jumps"].items():
            snap[table]["builtins"].setdefault(ipt.chain_names(rs.name)[chain][2], []).append(list(argv))
    snap["filter"]["builtins"].setdefault("FORWARD", []).append(["-s", "1.2.3.4/32", "-j", "ACCEPT"])  # foreign
    return snap


def test_judge_intact_and_saved():
    rs = ipt.render(load(LAB))
    seen = judge(rs.name, _snapshot(rs))
    assert seen["exists"] and seen["intact"] and seen["digest"] == rs.digest
    assert seen["saved"]["tables"] == rs.to_json()["tables"]


@pytest.mark.parametrize("damage", ["flush", "delete-rule", "foreign-rule", "no-jump", "two-jumps", "delete-chain",
                                    "other-digest"])
def test_judge_detects_drift(damage):
    rs = ipt.render(load(LAB))
    snap = _snapshot(rs)
    nat = snap["nat"]
    if damage == "flush":
        nat["chains"]["KN-natlab-POST"] = []
    elif damage == "delete-rule":
        nat["chains"]["KN-natlab-PRE"].pop()
    elif damage == "foreign-rule":
        nat["chains"]["KN-natlab-PRE"].append(["-p", "tcp", "-j", "ACCEPT"])
    elif damage == "no-jump":
        nat["builtins"]["OUTPUT"] = []
    elif damage == "two-jumps":
        nat["builtins"]["OUTPUT"].append(ipt.jump_rule("KN-natlab-OUT"))
    elif damage == "delete-chain":
        del nat["chains"]["KN-natlab-OUT"]
        nat["builtins"]["OUTPUT"] = []
    elif damage == "other-digest":
        nat["chains"]["KN-natlab-OUT"] = [[w.replace(rs.digest, "0" * 12) for w in r] for r in nat["chains"]["KN-natlab-OUT"]]
    seen = judge(rs.name, snap)
    assert seen["exists"] and not seen["intact"]


def test_judge_ignores_other_prefixes_and_foreign_chains():
    rs = ipt.render(load(LAB))
    other = ipt.render(load(LAB, LAB.read_text().replace('name = "natlab"', 'name = "natlab_x"')))
    assert other.name == "KN-natlab_x"
    snap = _snapshot(other)
    snap["filter"]["chains"]["DOCKER"] = [["-j", "RETURN"]]
    assert judge(rs.name, snap) == {"exists": False, "digest": None, "intact": False, "saved": None, "rules": {}}


def test_nft_rules_seen_in_iptables_nft_save():
    empty = "# Generated by iptables-nft-save\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\nCOMMIT\n"
    assert nft_rules(empty) == []
    assert nft_rules(empty.replace(":FORWARD ACCEPT", ":FORWARD DROP")) == ["-P FORWARD DROP"]
    assert nft_rules(empty.replace("COMMIT", "-A INPUT -j ACCEPT\nCOMMIT")) == ["-A INPUT -j ACCEPT"]
    assert nft_rules(empty.replace("COMMIT", ":DOCKER - [0:0]\nCOMMIT")) == ["-N DOCKER"]


def _forward_with(rs, order: list[str]):
    """The snapshot with FORWARD holding these jumps (a chain name, or a foreign "ACCEPT"), in order."""
    snap = _snapshot(rs)
    snap["filter"]["builtins"]["FORWARD"] = [["-s", "1.2.3.4/32", "-j", "ACCEPT"] if c == "ACCEPT" else ipt.jump_rule(c)
                                             for c in order]
    return snap


@pytest.mark.parametrize("order,intact", [
    (["KN-natlab-FWD", "KN-natlab-FWO"], True),
    (["ACCEPT", "KN-natlab-FWD", "ACCEPT", "KN-natlab-FWO"], True),  # another tool's inserts: not drift
    (["KN-natlab-FWO", "KN-natlab-FWD"], False),
    (["KN-other-ISO", "KN-natlab-FWD", "KN-other-FWD", "KN-natlab-FWO", "KN-other-FWO"], True),
    (["KN-natlab-FWD", "KN-other-ISO", "KN-natlab-FWO"], False),  # an isolated network's refusal below our accepts
    (["KN-natlab-FWD", "KN-other-FWD", "KN-natlab-FWO", "KN-other-ISO"], False),
    (["KN-natlab-FWD", "KN-natlab-FWO", "KN-other-ISO"], False),
    (["KN-other-FWO", "KN-natlab-FWD", "KN-natlab-FWO"], True),  # the other's to mend, not this topology's
])
def test_judge_sees_jumps_out_of_rank(order, intact):
    """_sync_jumps keeps every topology's ISO jumps above every FWD, and those above every FWO; a
    jump out of that order (another kvmnet run's, an admin's `iptables -I`) is drift to mend."""
    rs = ipt.render(load(LAB))
    assert set(rs.to_json()["tables"]["filter"]["jumps"]) == {"KN-natlab-FWD", "KN-natlab-FWO", "KN-natlab-INP"}
    assert judge(rs.name, _forward_with(rs, order))["intact"] is intact
