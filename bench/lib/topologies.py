"""Generated topologies for the scale sections (TOML text)."""


def nat_big_toml(name: str, guests: int, forwards: int) -> str:
    """A NAT network on a /20 with `guests` guests (static leases, one tap each) and `forwards`
    TCP port forwards to them."""
    out = [f'name = "{name}"', "", "[networks.big]", 'mode = "nat"', 'bridge = "kvbbig0"',
           'subnet = "10.88.0.0/20"', 'gateway = "10.88.0.1"', 'domain = "bench.lan"', "",
           "[networks.big.dhcp]", 'start = "10.88.8.1"', 'end = "10.88.15.254"', ""]
    for k in range(forwards):
        out += ["[[networks.big.forwards]]", 'proto = "tcp"', f"host_port = {20000 + k}",
                f'guest = "g{k % guests:03d}"', f"guest_port = {80 + k // guests}", ""]
    for i in range(guests):
        out += [f"[guests.g{i:03d}]", f"[[guests.g{i:03d}.nics]]", 'network = "big"',
                f'ip = "10.88.{1 + i // 200}.{10 + i % 200}"', ""]
    return "\n".join(out)


def fw_guest_ip(k: int) -> str:
    return f"10.99.{1 + k // 200}.{10 + k % 200}"


def fw_toml(name: str, n: int) -> str:
    """A NAT network (no dnsmasq, no guests) with n TCP port forwards to addresses in its /16."""
    out = [f'name = "{name}"', "", "[networks.fw]", 'mode = "nat"', 'bridge = "kvbfw0"',
           'subnet = "10.99.0.0/16"', 'gateway = "10.99.0.1"', ""]
    for k in range(n):
        out += ["[[networks.fw.forwards]]", 'proto = "tcp"', f"host_port = {10000 + k}",
                f'guest = "{fw_guest_ip(k)}"', "guest_port = 8080", ""]
    return "\n".join(out)


def taps_toml(name: str, n: int) -> str:
    """An isolated bridge (no subnet: no address, no dnsmasq) with n guests of one NIC each."""
    out = [f'name = "{name}"', "", "[networks.iso]", 'mode = "isolated"', 'bridge = "kvbtap0"', ""]
    for i in range(n):
        out += [f"[guests.g{i:04d}]", f"[[guests.g{i:04d}.nics]]", 'network = "iso"', ""]
    return "\n".join(out)
