"""A topology as a picture: Graphviz dot, a Mermaid `graph LR` block, or a text tree. Pure.

Each format draws the same facts, worded once here: networks (mode, bridge, subnet, gateway,
DHCP), guests and their NICs (MAC, address, tap), port forwards and uplinks. `status`, when
given (`kvmnet graph --live`), maps "network:NAME", "nic:GUEST:INDEX" and "forwards:NETWORK"
to "applied", "drifted" or "not applied"; objects without an entry have nothing on the host.
"""

from __future__ import annotations

from ..model import Forward, Network, Nic, Topology

FORMATS = ("dot", "mermaid", "text")
_DOT_COLORS = {"applied": "darkgreen", "drifted": "red", "not applied": "gray50"}


# ---------------------------------------------------------------- the words, shared by every format


def network_lines(net: Network) -> list[str]:
    """The network's label: its name, then one line per fact that applies to its mode."""
    lines = [f"network {net.name}", f"{net.mode} mode" + (f", bridge {net.bridge}" if net.bridge else "")]
    if net.subnet is not None:
        lines.append(f"subnet {net.subnet}" + (f", gateway {net.gateway}" if net.gateway else ""))
    if net.dhcp is not None:
        lines.append(f"dhcp {net.dhcp.start}-{net.dhcp.end} ({net.dhcp.lease_time})")
    if net.domain:
        lines.append(f"domain {net.domain}")
    if net.mtu:
        lines.append(f"mtu {net.mtu}")
    if net.user is not None:
        u = net.user
        lines.append(f"user net {u.net}, host {u.host}, dns {u.dns}, dhcp from {u.dhcpstart}")
        lines += [f"hostfwd {f.proto} {f.host_addr or '*'}:{f.host_port} -> :{f.guest_port}" for f in u.hostfwd]
        lines += [f"guestfwd {g.server_addr}:{g.server_port} -> {g.target}" for g in u.guestfwd]
        if u.tftp:
            lines.append(f"tftp {u.tftp}" + (f", bootfile {u.bootfile}" if u.bootfile else ""))
    if net.socket is not None:
        s = net.socket
        lines.append(f"{s.transport} {s.address}:{s.port}" + (f" via {s.localaddr}" if s.localaddr else ""))
    return lines


def nic_words(nic: Nic, index: int) -> str:
    words = [f"nic{index}", nic.mac]
    words += [str(nic.ip)] if nic.ip else []
    words += [f"tap {nic.tap}"] if nic.tap else []
    return " ".join(words)


def _ports(ports: tuple[int, int]) -> str:
    return str(ports[0]) if ports[0] == ports[1] else f"{ports[0]}-{ports[1]}"


def forward_words(f: Forward) -> str:
    host = (f"[{f.host_addr}]:" if f.host_addr.version == 6 else f"{f.host_addr}:") if f.host_addr else ""
    addrs = ", ".join(str(a) for a in (f.guest_ip, f.guest_ip6) if a is not None)
    target = (f"{f.guest} ({addrs})" if addrs else f.guest) if f.guest else addrs
    return f"{f.proto} {host}{_ports(f.host_ports)} -> {target}:{_ports(f.guest_ports)}"


def _attached(topo: Topology, net: Network) -> list[tuple[str, int, Nic]]:
    """(guest, NIC index, NIC) for every NIC on `net`, in file order."""
    return [(g.name, i, nic) for g in topo.guests for i, nic in enumerate(g.nics) if nic.network == net.name]


def _mark(status: dict | None, key: str) -> str:
    state = (status or {}).get(key)
    return f" [{state}]" if state else ""


# ---------------------------------------------------------------- text


def to_text(topo: Topology, status: dict | None = None) -> str:
    """A tree for the terminal: each network with its facts, forwards, uplink and NICs."""
    out = [f"topology {topo.name}"]
    for n, net in enumerate(topo.networks):
        last_net = n == len(topo.networks) - 1 and not _unattached(topo)
        head, lines = network_lines(net)[0], network_lines(net)[1:]
        out.append(("└── " if last_net else "├── ") + head + _mark(status, f"network:{net.name}"))
        children = list(lines)
        children += [f"uplink {net.uplink}"] if net.uplink else []
        children += [f"forward {forward_words(f)}{_mark(status, f'forwards:{net.name}')}" for f in net.forwards]
        children += [f"guest {g} {nic_words(nic, i)}{_mark(status, f'nic:{g}:{i}')}" for g, i, nic in _attached(topo, net)]
        pad = "    " if last_net else "│   "
        out += [pad + ("└── " if c == len(children) - 1 else "├── ") + line for c, line in enumerate(children)]
    loose = _unattached(topo)
    if loose:
        out.append("└── guests without NICs: " + ", ".join(loose))
    return "\n".join(out) + "\n"


def _unattached(topo: Topology) -> list[str]:
    return [g.name for g in topo.guests if not g.nics]


# ---------------------------------------------------------------- dot


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _dot_style(status: dict | None, key: str) -> str:
    state = (status or {}).get(key)
    if not state:
        return ""
    dashed = ", style=dashed" if state == "not applied" else ""
    return f", color={_DOT_COLORS[state]}, fontcolor={_DOT_COLORS[state]}{dashed}"


def to_dot(topo: Topology, status: dict | None = None) -> str:
    """A Graphviz digraph, left to right: guests -> networks -> uplinks; forwards from the host."""
    q = _dot_quote
    out = [f"digraph {q(topo.name)} {{", "  rankdir=LR;", '  node [fontname="monospace", fontsize=10];',
           '  edge [fontname="monospace", fontsize=9];']
    for net in topo.networks:
        label = "\n".join(network_lines(net)) + _mark(status, f"network:{net.name}")
        out.append(f"  {q('net:' + net.name)} [shape=box, label={q(label)}{_dot_style(status, f'network:{net.name}')}];")
        if net.uplink:
            out.append(f"  {q('uplink:' + net.uplink)} [shape=cds, label={q('uplink ' + net.uplink)}];")
            out.append(f"  {q('net:' + net.name)} -> {q('uplink:' + net.uplink)};")
    for guest in topo.guests:
        out.append(f"  {q('guest:' + guest.name)} [shape=component, label={q('guest ' + guest.name)}];")
        for i, nic in enumerate(guest.nics):
            key = f"nic:{guest.name}:{i}"
            label = nic_words(nic, i).replace(" ", "\n", 1) + _mark(status, key)
            out.append(f"  {q('guest:' + guest.name)} -> {q('net:' + nic.network)} "
                       f"[arrowhead=none, label={q(label)}{_dot_style(status, key)}];")
    forwards = [(net, f) for net in topo.networks for f in net.forwards]
    if forwards:
        out.append(f"  {q('host')} [shape=house, label={q('host ports')}];")
    for net, f in forwards:
        target = "guest:" + f.guest if f.guest else "net:" + net.name
        key = f"forwards:{net.name}"
        out.append(f"  {q('host')} -> {q(target)} [style=dashed, label={q(forward_words(f) + _mark(status, key))}];")
    return "\n".join(out + ["}"]) + "\n"


# ---------------------------------------------------------------- mermaid


def _mm_quote(text: str) -> str:
    """A Mermaid node/edge label: quoted, lines joined by <br/>, markup characters as entities."""
    for char, entity in (("&", "#amp;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(char, entity)
    return '"' + text.replace("\n", "<br/>") + '"'


def to_mermaid(topo: Topology, status: dict | None = None) -> str:
    """A `graph LR` block (ids n0, g0, u0: names may hold characters Mermaid ids cannot)."""
    q = _mm_quote
    ids = {net.name: f"n{i}" for i, net in enumerate(topo.networks)}
    out, classes = ["graph LR"], []
    for net in topo.networks:
        key = f"network:{net.name}"
        out.append(f"  {ids[net.name]}[{q(chr(10).join(network_lines(net)) + _mark(status, key))}]")
        classes += [(ids[net.name], status[key])] if status and key in status else []
        if net.uplink:
            out.append(f"  {ids[net.name]} --- u{ids[net.name][1:]}>{q('uplink ' + net.uplink)}]")
    for g, guest in enumerate(topo.guests):
        out.append(f"  g{g}[[{q('guest ' + guest.name)}]]")
        for i, nic in enumerate(guest.nics):
            label = nic_words(nic, i) + _mark(status, f"nic:{guest.name}:{i}")
            out.append(f"  g{g} ---|{q(label)}| {ids[nic.network]}")
    forwards = [(net, f) for net in topo.networks for f in net.forwards]
    if forwards:
        out.append(f"  host{{{q('host ports')}}}")
    guest_ids = {guest.name: f"g{g}" for g, guest in enumerate(topo.guests)}
    for net, f in forwards:
        target = guest_ids.get(f.guest or "", ids[net.name])
        out.append(f"  host -.->|{q(forward_words(f) + _mark(status, f'forwards:{net.name}'))}| {target}")
    if classes:
        out += ["  classDef applied stroke:#1a7f37,stroke-width:2px", "  classDef drifted stroke:#d1242f,stroke-width:3px",
                "  classDef notapplied stroke:#888,stroke-dasharray:4"]
        out += [f"  class {node} {state.replace(' ', '')}" for node, state in classes]
    return "\n".join(out) + "\n"


def render(topo: Topology, fmt: str, status: dict | None = None) -> str:
    return {"dot": to_dot, "mermaid": to_mermaid, "text": to_text}[fmt](topo, status)
