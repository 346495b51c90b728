"""What kvmnet fills in (config/derive.py): MACs for NICs without one, taps on bridged networks."""

from kvmnet import config, naming

NETS = ('name = "lab"\n[networks.n]\nmode = "isolated"\nbridge = "br0"\n'
        '[networks.s]\nmode = "socket"\ntransport = "mcast"\nport = 5000\n')


def nic(guest: str, network: str = "n", extra: str = "") -> str:
    return f'[guests.{guest}]\n[[guests.{guest}.nics]]\nnetwork = "{network}"\n{extra}'


def test_derived_mac_is_salted_away_from_a_given_one():
    taken = naming.guest_mac("lab", "b", 0)  # what b's NIC would get: given to a first
    topo = config.load_text(NETS + nic("a", extra=f'mac = "{taken}"\n') + nic("b"), "t.toml")
    assert topo.guest("a").nics[0].mac == taken
    assert topo.guest("b").nics[0].mac == naming.guest_mac("lab", "b", 0, salt=1)


def test_derived_macs_and_taps_are_deterministic():
    text = NETS + nic("a") + nic("b", "s") + nic("c", extra='tap = "vnet7"\n')
    first, again = (config.load_text(text, "t.toml") for _ in range(2))
    assert first == again
    a, b, c = (first.guest(g).nics[0] for g in "abc")
    assert (a.mac, a.tap) == (naming.guest_mac("lab", "a", 0), "kn-lab-a-0")
    assert (b.mac, b.tap) == (naming.guest_mac("lab", "b", 0), None)  # socket networks have no taps
    assert c.tap == "vnet7"
