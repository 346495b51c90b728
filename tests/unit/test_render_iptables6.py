"""The iptables backend's IPv6 half (render/iptables6.py): the ip6 chains, their place in the one
ruleset (digest, total, JSON) and the verdict observe() gives on ip6tables-legacy-save listings.
Golden files: tests/data/render-iptables/{nat6,dual-stack}/ (test_render_iptables.py)."""

from pathlib import Path

import pytest

from kvmnet import config
from kvmnet.render import iptables as ipt
from kvmnet.render.iptables_verdict import holds, judge

ROOT = Path(__file__).resolve().parents[2]
NAT6 = ROOT / "tests" / "data" / "topologies" / "nat6.toml"
LAB = ROOT / "tests" / "data" / "topologies" / "nat-lab.toml"
DUAL = ROOT / "topologies" / "dual-stack.toml"


def render(path: Path, text: str | None = None):
    return ipt.render(config.load_text(text if text is not None else path.read_text(), path.name))


def rules_of(chains: dict, hook: str) -> list[str]:
    """A chain's rules as text without kvmnet's comment."""
    chain = next(c for c in chains if c.endswith(f"-{hook}"))
    out = []
    for argv in chains[chain]:
        i = argv.index("--comment")
        out.append(" ".join(argv[:i - 2] + argv[i + 2:]))
    return out


def test_dual_stack_topology_is_rendered_not_refused():
    rs = render(DUAL)
    assert list(rs.to_json()["tables6"]) == ["filter"]  # its nat network routes the prefix: no ip6 nat
    assert "ip6:" in rs.summary


def test_ip6_chains_share_the_digest_and_the_total():
    rs = render(NAT6)
    data = rs.to_json()
    assert list(data["tables6"]) == ["filter", "nat"]
    assert set(data["tables6"]["filter"]["jumps"]) == {"KN-nat6-ISO", "KN-nat6-FWD", "KN-nat6-FWO", "KN-nat6-INP"}
    assert set(data["tables6"]["nat"]["jumps"]) == {"KN-nat6-PRE", "KN-nat6-OUT", "KN-nat6-POST"}
    assert "KN-nat6-GRD" not in rs.chains6  # no route_localnet on IPv6: nothing to guard
    for chains in (rs.chains, rs.chains6):
        for chain, rules in chains.items():
            for argv in rules:
                assert ipt.parse_comment(ipt.rule_comment(argv)) == (rs.digest, len(rules), rs.rules)


def test_ipv4_only_topology_keeps_its_json_and_digest_shape():
    rs = render(LAB)
    assert rs.chains6 == {} and "tables6" not in rs.to_json() and "ip6" not in rs.summary


def test_ipv6_inbound_routed_prefix_or_only_replies_with_nat6():
    fwd = rules_of(render(NAT6).chains6, "FWD")
    assert "-d fd00:67::/64 -o kn6r -j ACCEPT" in fwd  # routed
    assert "-d fd00:66::/64 -o kn6m -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT" in fwd  # nat6
    assert "-d fd00:66::/64 -o kn6m -j ACCEPT" not in fwd
    # every bridge's reject, the isolated one without IPv6 too, and after every accept into it
    rejects = [r for r in fwd if "REJECT" in r]
    assert rejects == [f"-o {br} -j REJECT --reject-with icmp6-adm-prohibited" for br in ("kn6m", "kn6r", "kn6i")]
    # all the isolated bridge sends elsewhere: refused in a chain of its own, jumped to above FWD's
    assert rules_of(render(NAT6).chains6, "ISO") == ["-i kn6i ! -o kn6i -j REJECT --reject-with icmp6-adm-prohibited"]
    fwo = rules_of(render(NAT6).chains6, "FWO")
    assert fwo[:2] == ["-s fd00:66::/64 -i kn6m -j ACCEPT", "-i kn6m -j REJECT --reject-with icmp6-adm-prohibited"]


def test_nat_network_without_nat6_routes_its_prefix_and_has_no_ip6_nat():
    rs = render(DUAL)
    assert "-d fd00:dead:beef:1::/64 -o kvmds0 -j ACCEPT" in rules_of(rs.chains6, "FWD")
    assert "nat" not in rs.to_json()["tables6"]


def test_nat6_masquerade_skips_link_scope_multicast():
    post = rules_of(render(NAT6).chains6, "POST")
    assert post[0] == "-s fd00:66::/64 -d ff02::/16 -j RETURN"
    assert "-s fd00:66::/64 ! -d fd00:66::/64 -j MASQUERADE" in post


def test_services_from_the_bridge_only():
    inp = rules_of(render(NAT6).chains6, "INP")
    assert "-d fd00:67::fe/128 ! -i kn6r -p udp -m udp --dport 547 -j DROP" in inp
    assert "-i kn6r -p ipv6-icmp -m icmp6 --icmpv6-type 133 -j ACCEPT" in inp
    assert "-i kn6m -p udp -m udp --dport 69 -j ACCEPT" in inp and "-i kn6r -p udp -m udp --dport 69 -j ACCEPT" not in inp
    assert not any("kn6i" in r for r in inp)  # no IPv6 on the isolated network: no services


def test_forwards_go_to_the_family_of_their_host_address():
    rs = render(NAT6)
    pre4, pre6 = rules_of(rs.chains, "PRE"), rules_of(rs.chains6, "PRE")
    assert pre6 == ["-p tcp -m tcp --dport 8080 -m addrtype --dst-type LOCAL -j DNAT --to-destination [fd00:66::10]:80",
                    "-d fd00:99::2/128 -p udp -m udp --dport 5000:5002 -j DNAT --to-destination [fd00:66::10]:5000-5002"]
    assert not any("fd00" in r or "5000" in r for r in pre4)
    assert any("-d 192.0.2.1/32" in r for r in pre4) and rs.forwards == 1 + 1 + 1 + 3


def test_json_round_trip_keeps_the_ip6_chains():
    rs = render(NAT6)
    assert ipt.IptRuleset.from_json(rs.to_json()) == rs


# ---- the verdict on both families' listings

def _snapshot(rs, family: int) -> dict:
    tables = ipt.FAMILY_TABLES[family]
    snap = {t: {"chains": {}, "builtins": {}} for t in tables}
    for table, body in rs.to_json().get(ipt.JSON_KEY[family], {}).items():
        snap[table]["chains"] = {c: [list(r) for r in rules] for c, rules in body["chains"].items()}
        for chain, argv in body["jumps"].items():
            snap[table]["builtins"].setdefault(ipt.chain_names(rs.name, family)[chain][2], []).append(list(argv))
    snap["filter"]["builtins"].setdefault("FORWARD", []).append(["-s", "fd00:1::/64", "-j", "ACCEPT"])  # foreign
    return snap


def test_judge_both_families_intact_and_saved():
    rs = render(NAT6)
    seen = judge(rs.name, _snapshot(rs, 4), _snapshot(rs, 6))
    assert seen["intact"] and seen["digest"] == rs.digest and holds(seen, rs.to_json())
    assert seen["saved"]["tables6"] == rs.to_json()["tables6"]
    assert seen["rules"]["ip6 KN-nat6-FWD"] == len(rs.chains6["KN-nat6-FWD"])
    assert ipt.IptRuleset.from_json(seen["saved"]).chains6 == rs.chains6  # what a rollback loads


@pytest.mark.parametrize("damage", ["delete-rule", "flush", "no-jump", "delete-chain", "edited-rule", "not-read"])
def test_judge_detects_ip6_drift(damage):
    rs = render(NAT6)
    snap6 = _snapshot(rs, 6)
    nat, fwd = snap6["nat"], snap6["filter"]["chains"]["KN-nat6-FWD"]
    if damage == "delete-rule":
        fwd.pop(5)
    elif damage == "flush":
        nat["chains"]["KN-nat6-POST"] = []
    elif damage == "no-jump":
        nat["builtins"]["PREROUTING"] = []
    elif damage == "delete-chain":
        del nat["chains"]["KN-nat6-OUT"]
        nat["builtins"]["OUTPUT"] = []
    elif damage == "edited-rule":  # counts still add up: only the rule-for-rule compare sees it
        assert fwd[5][-4:] == ["-j", "REJECT", "--reject-with", "icmp6-adm-prohibited"]
        fwd[5] = fwd[5][:-4] + ["-j", "ACCEPT"]
    seen = judge(rs.name, _snapshot(rs, 4), None if damage == "not-read" else snap6)
    assert seen["exists"] and not holds(seen, rs.to_json())
    if damage != "edited-rule":
        assert not seen["intact"]


def test_ipv4_only_ruleset_is_judged_as_before():
    rs = render(LAB)
    seen = judge(rs.name, _snapshot(rs, 4), {t: {"chains": {}, "builtins": {}} for t in ipt.TABLES6})
    assert seen["intact"] and holds(seen, rs.to_json()) and "tables6" not in seen["saved"]
