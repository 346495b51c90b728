"""host/firewalld.py's zone creation against a stand-in for firewalld's D-Bus API (busctl calls):
the reload it needs drops runtime bindings (FlushAllOnReload=yes), and each is bound again, to the
zone it was in, unless that zone is gone after the reload; one that cannot be bound again fails."""

import pytest

from kvmnet.errors import HostError
from kvmnet.host import firewalld


class Firewalld:
    """Runtime zones and bindings, a permanent zone list, and a reload that loads the permanent
    zones and drops every binding not in the permanent config (`permanent_bindings`)."""

    def __init__(self, zones, bindings, permanent_bindings=None, refuse=(), policies=None):
        self.zones, self.permanent = set(zones), set(zones)
        self.policies = set(policies if policies is not None else (f"{z}-in" for z in zones if z.startswith("kvmnet")))
        self.permanent_policies = set(self.policies)
        self.bindings, self.permanent_bindings = dict(bindings), dict(permanent_bindings or {})
        self.refuse, self.calls = set(refuse), []

    def __call__(self, path, interface, method, signature="", *args, dest=firewalld.FIREWALLD):
        self.calls.append(method)
        if method == "getZones":
            return _as(sorted(self.zones))
        if method == "getZoneNames":
            return _as(sorted(self.permanent))
        if method == "getPolicies":
            return _as(sorted(self.policies))
        if method == "getPolicyNames":
            return _as(sorted(self.permanent_policies))
        if method == "addPolicy":
            assert args[0].endswith("-in") and args[0][:-3] in args[1:] and "ANY" in args and "ACCEPT" in args, args
            self.permanent_policies.add(args[0])
            return ""
        if method == "getInterfaces":
            return _as(sorted(i for i, z in self.bindings.items() if z == args[0]))
        if method == "getZoneOfInterface":
            return f's "{self.bindings.get(args[0], "")}"'
        if method == "addZone2":
            self.permanent.add(args[0])
            return ""
        if method == "reload":
            self.zones, self.bindings = set(self.permanent), dict(self.permanent_bindings)
            self.policies = set(self.permanent_policies)
            return ""
        if method == "changeZoneOfInterface":
            zone, iface = args
            if iface in self.refuse or zone not in self.zones:
                raise HostError(f"firewalld: zone.changeZoneOfInterface: refused {iface}")
            self.bindings[iface] = zone
            return ""
        raise AssertionError(method)


def _as(words):
    return " ".join(["as", str(len(words))] + [f'"{w}"' for w in words])


def _add_zone(monkeypatch, fw, zone="kvmnet-tftp"):
    monkeypatch.setattr(firewalld, "_busctl", fw)
    firewalld._add_zone(zone, ["dhcp", "dns", "tftp"])


def test_every_binding_the_reload_dropped_is_made_again(monkeypatch):
    fw = Firewalld({"public", "trusted", "kvmnet"}, {"virbr0": "kvmnet", "admin0": "trusted", "eth0": "public"},
                   permanent_bindings={"eth0": "public"})
    _add_zone(monkeypatch, fw)
    assert fw.bindings == {"virbr0": "kvmnet", "admin0": "trusted", "eth0": "public"}
    assert "kvmnet-tftp" in fw.zones and fw.calls.count("reload") == 1
    assert fw.calls.count("changeZoneOfInterface") == 2  # eth0 came back by itself (permanent)


def test_a_zone_gone_after_the_reload_loses_its_bindings_as_firewalld_would(monkeypatch):
    fw = Firewalld({"public", "old"}, {"veth9": "old", "admin0": "public"})
    fw.permanent.discard("old")  # deleted from the permanent config, still in the runtime one
    _add_zone(monkeypatch, fw)
    assert fw.bindings == {"admin0": "public"}


def test_a_binding_that_cannot_be_made_again_fails_the_step_naming_it(monkeypatch):
    fw = Firewalld({"public", "trusted"}, {"admin0": "trusted", "virbr0": "public"}, refuse={"admin0"})
    with pytest.raises(HostError, match=r"could not bind again: admin0 to trusted \(firewalld: .*refused admin0\)"):
        _add_zone(monkeypatch, fw)
    assert fw.bindings == {"virbr0": "public"}


def test_an_existing_runtime_zone_means_no_reload(monkeypatch):
    fw = Firewalld({"public", "kvmnet-tftp"}, {"admin0": "public"})
    _add_zone(monkeypatch, fw)
    assert "reload" not in fw.calls and "getInterfaces" not in fw.calls


@pytest.mark.parametrize("reply, words", [
    ('as 3 "virbr0" "caf\\303\\251" "a\\\'b\\"c\\\\d"', ["virbr0", "café", "a'b\"c\\d"]),  # busctl's C escapes
    ("as 0", []), ('s ""', [""]), ('s "kvmnet"', ["kvmnet"])])
def test_busctl_strings_are_read_back_as_the_names_they_were(reply, words):
    assert firewalld._strings(reply) == words


def test_a_zone_an_earlier_kvmnet_made_gets_its_policy_with_one_reload(monkeypatch):
    """The policy from any zone into kvmnet's lets the LAN reach a routed network (libvirt's
    libvirt-routed-in); a zone made before it had none: the zone stays, the policy is added."""
    fw = Firewalld({"public", "kvmnet-tftp"}, {"admin0": "public"}, policies=set())
    _add_zone(monkeypatch, fw)
    assert fw.policies == {"kvmnet-tftp-in"} and fw.calls.count("reload") == 1 and "addZone2" not in fw.calls
    assert fw.bindings == {"admin0": "public"}
