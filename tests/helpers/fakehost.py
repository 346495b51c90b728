"""An in-memory host for the engine (kvmnet.host.system.System's methods), in the spirit of
knftables.Fake: it runs every Step op by changing its own state, records the steps it ran,
and can be told to fail a chosen one, so the transaction, rollback and destroy are testable
without root. Faithful where the engine depends on it: apply then observe gives an empty plan.

    host = FakeHost().with_nic("eth0", "52:54:00:00:00:01", ["192.0.2.10/24"], gateway="192.0.2.1")
    engine.apply(topo, state_root, host=host)
    host.fail(at=3)          # the 4th step from now raises HostError
    host.fail(op="link.del")  # the next link.del raises (an undo, during a rollback)
"""

from __future__ import annotations

import copy
import errno
import hashlib
import ipaddress
import json
import re

from kvmnet.errors import HostError
from kvmnet.render.nft import elements_digest
from kvmnet.observed import Address, Link, Route

_PER_LINK_SYSCTLS = {"net/ipv6/conf/{}/disable_ipv6": "0", "net/ipv4/conf/{}/route_localnet": "0",
                     "net/ipv6/conf/{}/accept_ra": "1", "net/ipv6/conf/{}/autoconf": "1",
                     "net/ipv6/conf/{}/accept_dad": "1"}
_COMMENT = re.compile(r'comment "([^"]*)"\s*$')
_MARK = re.compile(r"kvmnet [0-9a-f]{12}")


def _enodev(name: str) -> OSError:
    return OSError(errno.ENODEV, f"link {name} does not exist")


class FakeHost:
    def __init__(self, nft: bool = True, iptables_problem: str | None = None):
        self.nft, self.ipt_problem = nft, iptables_problem
        self.links_: dict[str, dict] = {}
        self.acl: dict[str, str] = {}  # qemu-bridge-helper: bridge -> topology
        self.vdes: set[str] = set()  # control dirs of running vde_switches
        self.passts: set[str] = set()  # directories of running passts (tests start them)
        self.addrs_: dict[str, set] = {}
        self.addr_attrs: dict[str, dict] = {}  # link -> {cidr: attributes}, in the order added
        self.routes_: list[Route] = []
        self.sysctls = {"net/ipv4/ip_forward": "0", "net/ipv6/conf/all/forwarding": "0",
                        # what a new link gets (the kernel's defaults): its per-link sysctls below
                        "net/ipv6/conf/default/accept_ra": "1", "net/ipv6/conf/default/autoconf": "1",
                        "net/ipv6/conf/default/disable_ipv6": "0"}
        self.nft_tables: dict[tuple[str, str], dict] = {}  # (family, name) -> {"chains", "maps"}
        self.nft_terse_listings = 0  # listings without the maps' elements (host/nftables.observe, terse)
        self.nft_gen: int | None = None  # nftables' generation, when a test models it (nft_generation)
        self.nft_listings = 0  # observations of kvmnet's nft table that listed it
        self.ipt_tables: dict[str, dict] = {}  # prefix -> the ruleset JSON it was given
        self.forward = {"policy": "ACCEPT", "rules": []}  # the host's filter FORWARD (iptables -S lines)
        self.forward6 = {"policy": "ACCEPT", "rules": []}  # ... and ip6tables'
        self.forward_reads = []  # the `ipv6` of each host_forward() read
        # conf path -> {"pid", "conf_text", "network", "hosts", "dhcp_hosts", "bridge": [name, ifindex]}
        self.dnsmasqs: dict[str, dict] = {}
        self.vxlans: dict[str, dict] = {}
        self.frrs: dict[str, dict] = {}
        self.frr_installed = True  # FRR dir -> {pid, host, listen, peers}  # name -> {vni, local, port, learning, port_learning, fdb: set}
        self.held_gateways: dict[tuple[str, str], str] = {}  # (bridge, ip) -> MAC of another host answering ARP
        self.probed: list[tuple[str, str]] = []  # ARP probes made (gateway_holder)
        self.reloads = 0  # SIGHUPs the fake dnsmasqs took
        self.listeners: dict[tuple[str, int], list[str]] = {}  # (proto, port) -> holders
        # firewalld, when running: {"zones": runtime, "permanent": zones, "bindings": {iface: zone}}
        self.firewalld_: dict | None = None
        self.qdiscs_: dict[str, dict] = {}  # link -> {"root": {kind, rate, burst}, "redirect": ifb}, as tc reads back
        self.ran: list = []  # steps that succeeded, in order
        self.failed: list = []  # steps that were made to fail
        self.link_reads: list = []  # "links" for a whole dump, ("links_named", names) for a verify's few
        self._rules: list[dict] = []
        self._calls = self._next_index = self._next_pid = 0
        self._add_link("lo", kind="", mac="00:00:00:00:00:00", mtu=65536)

    # ------------------------------------------------------------ setting the scene

    def with_nic(self, name: str, mac: str, addrs=(), gateway: str | None = None) -> "FakeHost":
        self._add_link(name, kind="", mac=mac)
        for cidr in addrs:
            self._addr_add(name, cidr)
        if gateway:
            self._route_add({"family": 4, "dst": "default", "dev": name, "gateway": gateway, "proto": "dhcp"})
        return self

    def fail(self, at: int | None = None, op: str | None = None) -> None:
        """Make the `at`-th run() from now (0-based), or the next step with op `op`, raise."""
        self._rules.append({"at": None if at is None else self._calls + at, "op": op})

    def state(self) -> dict:
        """Everything a step can change, as plain data (compare before and after)."""
        return copy.deepcopy({"links": self.links_, "addrs": {k: v for k, v in self.addrs_.items() if v},
                              "routes": sorted(map(repr, self.routes_)), "sysctls": self.sysctls,
                              "addr_attrs": {k: list(v.items()) for k, v in self.addr_attrs.items() if v},
                              "nft": self.nft_tables, "ipt": self.ipt_tables, "forward": self.forward, "forward6": self.forward6,
                              "dnsmasq": self.dnsmasqs, "firewalld": self.firewalld_,
                              **({"tc": self.qdiscs_} if self.qdiscs_ else {}),
                              "vxlans": {n: dict(v, fdb=sorted(v["fdb"])) for n, v in self.vxlans.items()},
                              "frr": self.frrs})

    def ops(self) -> list[str]:
        return [s.op for s in self.ran]

    # ------------------------------------------------------------ System: reads

    def links(self) -> dict[str, Link]:
        self.link_reads.append("links")
        return {name: Link(name=name, **attrs) for name, attrs in self.links_.items()}

    def links_named(self, names) -> dict[str, Link]:
        self.link_reads.append(("links_named", tuple(sorted(names))))
        return {name: Link(name=name, **self.links_[name]) for name in names if name in self.links_}

    def addrs(self, links) -> dict[str, tuple]:
        """Each link's Addresses in the order they were added, as the kernel lists IPv4."""
        return {k: tuple(Address(cidr, **self.addr_attrs.get(k, {}).get(cidr, {})) for cidr in self._order(k))
                for k, v in self.addrs_.items() if v}

    def _order(self, link: str) -> list[str]:
        known = [c for c in self.addr_attrs.get(link, {}) if c in self.addrs_[link]]
        return known + sorted(self.addrs_[link] - set(known))

    def routes(self, links) -> tuple:
        return tuple(self.routes_)

    def sysctl(self, path: str) -> str | None:
        return self.sysctls.get(path)

    def nft_available(self) -> bool:
        return self.nft

    def iptables_problem(self, ipv6: bool) -> str | None:
        return self.ipt_problem

    def firewall(self, name: str, backend: str, bridge_table: bool, known: dict | None = None) -> dict:
        if backend == "iptables":
            rs = self.ipt_tables.get(name)
            if rs is None:
                return {"exists": False, "digest": None, "intact": False, "saved": None, "rules": {}}
            return {"exists": True, "digest": rs.get("digest"), "intact": True, "saved": copy.deepcopy(rs),
                    "rules": {}, "marked": _ipt_marked(rs)}
        stamp = {"at": self.nft_generation(), "table": name, "bridge_table": bridge_table}
        if stamp["at"] is not None and known and known.get("stamp") == stamp:
            if not known.get("terse"):
                return dict(known)  # as host/nftables.observe: the generation has not moved
            self.nft_terse_listings += 1  # ... and for a terse one, the rest listed without elements
            seen = self._nft_seen(name, bridge_table)
            if seen.get("exists") and seen["elements"].keys() == known["elements"].keys():
                return dict(seen, elements=known["elements"], forwards=known["forwards"], stamp=stamp)
        self.nft_listings += 1
        seen = self._nft_seen(name, bridge_table)
        return dict(seen, stamp=stamp) if stamp["at"] is not None else seen

    def _nft_seen(self, name: str, bridge_table: bool) -> dict:
        # as host/nftables.observe: the bridge table too when the topology has one, or when
        # there is no inet table (a first apply must see a foreign one)
        listed = ["inet", "bridge"] if bridge_table or ("inet", name) not in self.nft_tables else ["inet"]
        families = [f for f in listed if (f, name) in self.nft_tables]
        if not families:
            return {"exists": False}
        rules, elements, forwards, comments = {}, {}, {}, set()
        for family in families:
            table = self.nft_tables[(family, name)]
            for chain, body in table["chains"].items():
                label = chain if family == "inet" else f"bridge:{chain}"
                if body["rules"]:
                    rules[label] = len(body["rules"])
                comments.update(m.group(1) if (m := _COMMENT.search(r)) else "" for r in body["rules"])
            elements.update({m: len(body["elements"]) for m, body in table["maps"].items()})
            forwards.update({m: elements_digest(body["elements"]) for m, body in table["maps"].items()})
        # what a listing of them shows, but the maps' elements (`forwards`, as host/nftables.py)
        content = {f: {"chains": self.nft_tables[(f, name)]["chains"],
                       "maps": {m: b["head"] for m, b in self.nft_tables[(f, name)]["maps"].items()}}
                   for f in families}
        return {"exists": True, "families": families, "rules": rules, "elements": elements, "forwards": forwards,
                "comments": sorted(comments), "marked": any(_MARK.fullmatch(c) for c in comments),
                "content": hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()}

    def nft_generation(self) -> str | None:
        """None (no stamps: every observation lists) unless a test sets nft_gen, an int that
        each nft commit of this fake moves by one, as the kernel's generation."""
        return None if self.nft_gen is None else f"fake-boot:1:{self.nft_gen}"

    def _nft_commit(self) -> None:
        if self.nft_gen is not None:
            self.nft_gen += 1

    def firewall_listing(self, table: str) -> str:
        return "".join(_nft_text(family, table, self.nft_tables[(family, table)])
                       for family in ("inet", "bridge") if (family, table) in self.nft_tables)

    def host_forward(self, ipv6: bool = False) -> dict:
        self.forward_reads.append(ipv6)
        out = {"policy": self.forward["policy"], "rules": [r for r in self.forward["rules"] if "kvmnet" in r]}
        if ipv6:
            out.update(policy6=self.forward6["policy"], rules6=[r for r in self.forward6["rules"] if "kvmnet" in r])
        return out

    def dnsmasq_binary(self) -> str:
        return "/usr/sbin/dnsmasq"

    def vde(self, pid_file: str, ctl: str) -> dict:
        return {"pid": 4242 if ctl in self.vdes else None}

    def _vde_start(self, a: dict) -> None:
        self.vdes.add(a["ctl"])
        if a.get("tap"):
            if a["tap"] not in self.links_:
                self._add_link(a["tap"], "tun")
            self.links_[a["tap"]].update(master=a["bridge"], up=True)

    def _vde_stop(self, a: dict) -> None:
        self.vdes.discard(a["ctl"])
        tap = next((n for n, l in self.links_.items() if n.startswith("kv") and l["kind"] == "tun"), None)
        if tap:  # the switch's tap goes with it
            self.links_.pop(tap)

    def _passt_stop(self, a: dict) -> None:
        self.passts.discard(a["dir"])

    def qemu_conf_dir(self) -> str:
        return "/etc/qemu"

    def qemu_acl(self, conf_dir: str) -> dict:
        return dict(self.acl)

    def _qemuacl_add(self, a: dict) -> None:
        self.acl[a["bridge"]] = a["topology"]

    def _qemuacl_del(self, a: dict) -> None:
        if self.acl.get(a["bridge"]) == a["topology"]:
            del self.acl[a["bridge"]]

    def dnsmasq_user(self) -> str:
        return "nobody"

    def dnsmasq_group(self, user: str) -> str:
        return "nogroup"

    def dnsmasq(self, conf: str, pid_file: str, exe: str | None = None) -> dict:
        proc = self.dnsmasqs.get(conf)
        if proc is None:
            return {"pid": None, "conf_text": None, "hosts": None, "dhcp_hosts": None, "bridge": None}
        return {k: proc[k] for k in ("pid", "conf_text", "hosts", "dhcp_hosts", "bridge")}

    def listening(self) -> dict:
        return {key: {"inode"} for key in self.listeners}

    def port_holders(self, port: int, proto: str) -> list[str]:
        return list(self.listeners.get((proto, port), []))

    def firewalld(self, bridges) -> dict:
        fw = self.firewalld_
        if fw is None:
            return {}
        return {"running": True, "zones": sorted(fw["zones"]), "permanent": sorted(fw["permanent"]),
                "bindings": {br: fw["bindings"].get(br, "") for br in bridges},
                "unpolicied": sorted(fw.get("unpolicied", ()))}  # (kvmnet zones an earlier kvmnet made)

    def with_firewalld(self, default_zone: str = "public") -> "FakeHost":
        zones = {"block", "dmz", "drop", "external", "home", "internal", "public", "trusted", "work"}
        self.firewalld_ = {"zones": set(zones), "permanent": set(zones), "bindings": {}, "reloads": 0}
        return self

    def firewalld_reload(self) -> None:
        """As firewalld's reload: permanent zones loaded, runtime bindings gone."""
        fw = self.firewalld_
        fw["zones"], fw["bindings"], fw["reloads"] = set(fw["permanent"]), {}, fw["reloads"] + 1

    def ifindex(self, name: str) -> int | None:
        link = self.links_.get(name)
        return link["index"] if link else None

    def qdiscs(self, devs: list[str]) -> dict:
        return {d: copy.deepcopy(self.qdiscs_.get(d, {"root": None, "redirect": None})) for d in devs}

    def frr(self, topo_dir: str) -> dict:
        inst = self.frrs.get(topo_dir + "/frr")
        if inst is None:
            return {"zebra": None, "bgpd": None, "zebra_conf": None, "bgpd_conf": None, "available": self.frr_installed}
        from kvmnet.render import frr as frr_conf
        return {"available": True, "zebra": inst["pid"], "bgpd": inst["pid"] + 1, "zebra_conf": frr_conf.zebra_conf(inst["host"]),
                "bgpd_conf": frr_conf.bgpd_conf(inst["host"], inst["listen"], inst["peers"])}

    def frr_sessions(self, topo_dir: str) -> list[dict]:
        inst = self.frrs.get(topo_dir + "/frr")
        return [{"peer": p, "state": "Established", "uptime": "00:00:01", "prefixes": 1} for p in inst["peers"]] if inst else []

    def remote_macs(self, vxlan: str) -> list[dict]:
        return []

    def gateway_holder(self, dev: str, ip: str) -> str | None:
        """Another host's gateway on a stretched network's segment: tests set `held_gateways`."""
        self.probed.append((dev, ip))
        return self.held_gateways.get((dev, ip)) if dev in self.links_ else None

    def _frr_start(self, a: dict) -> None:
        self._next_pid += 2
        self.frrs[a["dir"]] = {"pid": 5000 + self._next_pid, **{k: a[k] for k in ("host", "listen", "peers")}}

    def _frr_stop(self, a: dict) -> None:
        self.frrs.pop(a["dir"], None)

    def overlay(self, vxlans: list[str]) -> dict:
        present = [n for n in vxlans if n in self.vxlans]
        return {"vxlan": {n: {k: v for k, v in self.vxlans[n].items() if k != "fdb"} for n in present},
                "fdb": {n: sorted(self.vxlans[n]["fdb"]) for n in present}}

    # ------------------------------------------------------------ System: changes

    def run(self, step) -> None:
        index, self._calls = self._calls, self._calls + 1
        for rule in self._rules:
            if rule["at"] == index or (rule["at"] is None and rule["op"] == step.op):
                self._rules.remove(rule)
                self.failed.append(step)
                raise HostError(f"fake host: {step.op} failed (as told)")
        self._handler(step.op)(step.args)
        self.ran.append(step)

    def _handler(self, op: str):
        """Every op host/executor.run knows, as a change of this fake's state."""
        a_few = {"addr.add": lambda a: self._addr_add(a["link"], a["cidr"], **_attrs(a)),
                 "addr.del": lambda a: self._addr_del(a["link"], a["cidr"]),
                 "route.add": lambda a: self._route_add(a["route"]),
                 "route.del": lambda a: self._route_del(a["route"]),
                 "sysctl.set": lambda a: self._sysctl_set(a["path"], a["value"])}
        if op in a_few:
            return a_few[op]
        handler = getattr(self, "_" + op.replace(".", "_"), None)
        if handler is None:
            raise ValueError(f"unknown step {op}")
        return handler

    # firewalld (a stopped one: the undos have nothing to do, the rest fail)

    def _firewalld_zone_add(self, a: dict) -> None:
        if self.firewalld_ is None:
            raise HostError("firewalld: not running")
        self.firewalld_["permanent"].add(a["zone"])
        unpolicied = self.firewalld_.setdefault("unpolicied", set())
        if a["zone"] not in self.firewalld_["zones"] or a["zone"] in unpolicied:  # a reload, then every binding it dropped made again
            unpolicied.discard(a["zone"])
            bound = dict(self.firewalld_["bindings"])
            self.firewalld_reload()
            self.firewalld_["bindings"] = {i: z for i, z in bound.items() if z in self.firewalld_["zones"]}

    def _firewalld_zone_del(self, a: dict) -> None:
        if self.firewalld_ is not None:
            self.firewalld_["permanent"].discard(a["zone"])

    def _firewalld_bind(self, a: dict) -> None:
        if self.firewalld_ is None:
            raise HostError("firewalld: not running")
        self.firewalld_["bindings"].setdefault(a["bridge"], a["zone"])  # a zone the admin chose stays

    def _firewalld_unbind(self, a: dict) -> None:
        if self.firewalld_ is not None and self.firewalld_["bindings"].get(a["bridge"]) == a["zone"]:
            del self.firewalld_["bindings"][a["bridge"]]

    # links

    def _add_link(self, name: str, kind: str, mac: str | None = None, mtu: int | None = None, **attrs) -> None:
        self._next_index += 1
        self.links_[name] = {"index": self._next_index, "kind": kind, "mtu": mtu or 1500, "up": True,
                             "master": None, "mac": mac or f"02:fa:ce:00:00:{self._next_index:02x}",
                             "stp": None, "forward_delay": None, "group": 0, **attrs}
        for template, value in _PER_LINK_SYSCTLS.items():
            self.sysctls[template.format(name)] = value

    def _vxlan_add(self, a: dict) -> None:
        if a.get("replace") and a["name"] in self.links_:
            self._link_del({"name": a["name"]})
        if a["name"] in self.links_:
            raise HostError(f"fake host: {a['name']} exists")
        self._add_link(a["name"], "vxlan", None, a["mtu"], master=a["master"])
        self.vxlans[a["name"]] = {"vni": a["vni"], "local": a["local"], "port": a["port"],
                                  "learning": a.get("learning", False),
                                  "port_learning": a.get("port_learning") is not False, "fdb": set()}

    def _fdb_add(self, a: dict) -> None:
        if a["dev"] not in self.vxlans or a["dst"] in self.vxlans[a["dev"]]["fdb"]:
            raise HostError(f"fake host: fdb append {a}: refused")
        self.vxlans[a["dev"]]["fdb"].add(a["dst"])

    def _fdb_del(self, a: dict) -> None:
        if a["dev"] not in self.vxlans or a["dst"] not in self.vxlans[a["dev"]]["fdb"]:
            raise HostError(f"fake host: fdb del {a}: no such entry")
        self.vxlans[a["dev"]]["fdb"].discard(a["dst"])

    def _bridge_add(self, a: dict) -> None:
        if a["name"] not in self.links_:
            self._add_link(a["name"], "bridge", a.get("mac"), a.get("mtu"), stp=a["stp"],
                           forward_delay=a["forward_delay"], group=a.get("group") or 0)
        self.links_[a["name"]]["up"] = True

    def _tap_add(self, a: dict) -> None:
        if a["master"] not in self.links_:
            raise _enodev(a["master"])
        if a["name"] not in self.links_:
            self._add_link(a["name"], "tun", a.get("mac"), a.get("mtu"), multi_queue=bool(a.get("multi_queue")))
        link = self.links_[a["name"]]
        link.update(master=a["master"], up=True)
        if a.get("group") is not None:  # (as the real one: no group given, the tap keeps its own)
            link["group"] = a["group"]

    def _link_del(self, a: dict) -> None:
        name = a["name"]
        if self.links_.pop(name, None) is None:
            return
        self.qdiscs_.pop(name, None)
        for link in self.links_.values():
            if link["master"] == name:
                link["master"] = None
        self.addrs_.pop(name, None)
        self.vxlans.pop(name, None)
        self.addr_attrs.pop(name, None)
        self.routes_ = [r for r in self.routes_ if r.dev != name]
        self.sysctls = {k: v for k, v in self.sysctls.items() if f"/conf/{name}/" not in k}

    def _macvtap_add(self, a: dict) -> None:
        if a["uplink"] not in self.links_:
            raise _enodev(a["uplink"])
        if a["name"] in self.links_:
            raise HostError(f"fake host: {a['name']} exists")
        self._add_link(a["name"], a["kind"], a.get("mac"))

    # bandwidth limits (tc): a tbf on egress; ingress redirected to an ifb shaped the same way

    def _tc_limit(self, a: dict) -> None:
        if a["dev"] not in self.links_:
            raise _enodev(a["dev"])
        shaped = a["dev"]
        if a["direction"] == "out":
            shaped = a["ifb"]
            if shaped not in self.links_:
                self._add_link(shaped, "ifb")
            self.qdiscs_.setdefault(a["dev"], {"root": None, "redirect": None})["redirect"] = shaped
        # tc reads the burst back rounded to its scheduler ticks
        root = {"kind": "tbf", "rate": a["rate"] // 8, "burst": a["burst"] - 1}
        self.qdiscs_.setdefault(shaped, {"root": None, "redirect": None})["root"] = root

    def _tc_unlimit(self, a: dict) -> None:
        q = self.qdiscs_.get(a["dev"])
        if q is not None:
            q["root" if a["direction"] == "in" else "redirect"] = None
            if q == {"root": None, "redirect": None}:
                del self.qdiscs_[a["dev"]]
        if a["direction"] == "out":
            self._link_del({"name": a["ifb"]})

    def _links_del_group(self, a: dict) -> None:
        for name in a["names"] if a.get("regroup") else ():
            if name in self.links_:
                self.links_[name]["group"] = a["group"]
        members = {n for n, link in self.links_.items() if link["group"] == a["group"]}
        for name in members if members and members <= set(a["names"]) else ():
            self._link_del({"name": name})
        for name in a["names"]:
            self._link_del({"name": name})

    def _link_set(self, a: dict) -> None:
        link = self.links_.get(a["name"])
        if link is None:
            raise _enodev(a["name"])
        if "master" in a:
            if a["master"] and a["master"] not in self.links_:
                raise _enodev(a["master"])
            link["master"] = a["master"] or None
        for attr in ("mac", "mtu"):
            if a.get(attr):
                link[attr] = a[attr]
        for attr in ("stp", "forward_delay", "up"):
            if a.get(attr) is not None:
                link[attr] = a[attr]

    # addresses and routes (an IPv4 address brings its subnet's kernel route, as in Linux)

    def _addr_add(self, link: str, cidr: str, **attrs) -> None:
        if link not in self.links_:
            raise _enodev(link)
        if cidr in self.addrs_.get(link, ()):
            return
        self.addrs_.setdefault(link, set()).add(cidr)
        self.addr_attrs.setdefault(link, {})[cidr] = attrs
        iface = ipaddress.ip_interface(cidr)
        if iface.version == 4 and iface.network.prefixlen < 32 and not attrs.get("flags", 0) & 0x200:
            self._route_add({"family": 4, "dst": str(iface.network), "dev": link, "proto": "kernel",
                             "scope": 253, "prefsrc": str(iface.ip)})

    def _addr_del(self, link: str, cidr: str) -> None:
        self.addrs_.get(link, set()).discard(cidr)
        self.addr_attrs.get(link, {}).pop(cidr, None)
        self.routes_ = [r for r in self.routes_
                        if not (r.dev == link and r.proto == "kernel" and r.prefsrc == cidr.split("/")[0])]

    def _route_add(self, route: dict) -> None:
        if route["dev"] not in self.links_:
            raise _enodev(route["dev"])
        gateway = route.get("gateway")
        if gateway and not any(r.dev == route["dev"] and r.proto == "kernel"
                               and ipaddress.ip_address(gateway) in ipaddress.ip_network(r.dst)
                               for r in self.routes_):
            raise OSError(errno.ENETUNREACH, f"gateway {gateway} is not reachable on {route['dev']}")
        new = Route(**route)
        if not any(_same_route(r, new) for r in self.routes_):
            self.routes_.append(new)

    def _route_del(self, route: dict) -> None:
        gone = Route(**route)
        self.routes_ = [r for r in self.routes_ if not _same_route(r, gone)]

    def _sysctl_set(self, path: str, value: str) -> None:
        if path not in self.sysctls:
            if "/conf/" in path:
                return  # the interface is gone, as host/sysctl.write allows
            raise FileNotFoundError(errno.ENOENT, f"/proc/sys/{path}")
        self.sysctls[path] = value

    # firewall, dnsmasq

    def _firewall_apply(self, a: dict) -> None:
        if a["backend"] == "iptables":
            self.ipt_tables[a["table"]] = copy.deepcopy(a["ruleset"])
        else:
            _nft_load(self.nft_tables, a["ruleset"])
            self._nft_commit()

    def _firewall_elements(self, a: dict) -> None:
        """As nft runs an element delta: one transaction; an element is found by its key (nft
        deletes `key : value` whatever value the key has). A missing table or map, a key to
        delete that is not there, or one to add that is: nothing changes and it fails."""
        table = self.nft_tables.get(("inet", a["table"]))
        maps = copy.deepcopy(table["maps"]) if table is not None else None
        for verb, elements in (("delete", a["delete"]), ("add", a["add"])):
            for name, elems in elements.items():
                if maps is None or name not in maps:
                    raise HostError(f"nft: no such map inet {a['table']} {name}")
                held = {e.split(" : ")[0]: e for e in maps[name]["elements"]}
                for e in elems:
                    key = e.split(" : ")[0]
                    if (key in held) != (verb == "delete"):
                        raise HostError(f"nft: cannot {verb} element {e} of {name}")
                    if verb == "delete":
                        del held[key]
                    else:
                        held[key] = e
                maps[name]["elements"] = list(held.values())
        table["maps"] = maps
        self._nft_commit()

    def _firewall_delete(self, a: dict) -> None:
        if a["backend"] == "iptables":
            self.ipt_tables.pop(a["table"], None)
        else:
            _nft_load(self.nft_tables, a["delete"])
            self._nft_commit()

    def _fwaccept_add(self, a: dict) -> None:
        chain = self.forward6 if a.get("family") == 6 else self.forward
        for spec in reversed(a["specs"]):
            if _save_line(spec) not in chain["rules"]:
                chain["rules"].insert(0, _save_line(spec))

    def _fwaccept_del(self, a: dict) -> None:
        chain = self.forward6 if a.get("family") == 6 else self.forward
        chain["rules"] = [r for r in chain["rules"] if r not in map(_save_line, a["specs"])]

    def _dnsmasq_start(self, a: dict) -> None:
        self.dnsmasqs.pop(a["conf"], None)
        if a["bridge"] not in self.links_:
            raise HostError(f"dnsmasq for {a['network']} failed to start: unknown interface {a['bridge']}")
        if ("udp", 67) in self.listeners:
            raise HostError(f"dnsmasq for {a['network']} failed to start: failed to bind DHCP server socket "
                            f"(udp port 67 is held by {', '.join(self.listeners[('udp', 67)])})")
        self._next_pid += 1
        self.dnsmasqs[a["conf"]] = {"pid": 1000 + self._next_pid, "conf_text": a["conf_text"], "network": a["network"],
                                    "hosts": a.get("hosts") or "", "dhcp_hosts": a.get("dhcp_hosts") or "",
                                    "bridge": [a["bridge"], self.links_[a["bridge"]]["index"]]}

    def _dnsmasq_reload(self, a: dict) -> None:
        proc = self.dnsmasqs.get(a["conf"])
        if proc is None:
            raise HostError(f"dnsmasq for {a['network']} is not running: nothing to reload")
        proc.update(hosts=a["hosts"], dhcp_hosts=a["dhcp_hosts"])
        self.reloads += 1

    def _dnsmasq_stop(self, a: dict) -> None:
        self.dnsmasqs.pop(a["conf"], None)


def _ipt_marked(ruleset: dict) -> bool:
    """Some rule of the ruleset carries kvmnet's "kvmnet <digest> <n>/<total>" comment."""
    return any(re.fullmatch(r"kvmnet [0-9a-f]{12} \d+/\d+", argv[i + 1])
               for body in ruleset.get("tables", {}).values() for rules in body.get("chains", {}).values()
               for argv in rules for i, word in enumerate(argv[:-1]) if word == "--comment")


def _same_route(a: Route, b: Route) -> bool:
    return (a.family, a.dst, a.dev, a.gateway, a.table) == (b.family, b.dst, b.dev, b.gateway, b.table)


def _attrs(step_args: dict) -> dict:
    """An addr step's address attributes (lifetimes kept as recorded: the fake has no clock)."""
    return {k: v for k, v in step_args.items() if k not in ("link", "cidr")}


def _save_line(spec: list[str]) -> str:
    return "-A FORWARD " + " ".join(f'"{w}"' if " " in w else w for w in spec)


def _nft_load(tables: dict, text: str) -> None:
    """Run an `nft -f` batch of the shape kvmnet writes: table adds, deletes and table blocks."""
    stack: list = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        words = line.split()
        if not stack and words[0] == "delete":
            if tables.pop((words[2], words[3]), None) is None:
                raise HostError(f"nft: no such table {words[2]} {words[3]}")
        elif not stack and words[0] == "table":
            table = tables.setdefault((words[1], words[2]), {"chains": {}, "maps": {}, "sets": {}})
            if line.endswith("{"):
                stack.append(table)
        elif line == "}":
            stack.pop()
        elif words[0] in ("chain", "map", "set") and line.endswith("{"):
            body = {"head": [], "rules": []} if words[0] == "chain" else {"head": [], "elements": []}
            stack[-1].setdefault(words[0] + "s" if words[0] != "chain" else "chains", {})[words[1]] = body
            stack.append(body)
        elif line.startswith("elements = {"):
            stack.append(stack[-1]["elements"])
        elif isinstance(stack[-1], list):
            stack[-1].append(line.rstrip(","))
        elif "rules" in stack[-1] and not line.startswith("type "):
            stack[-1]["rules"].append(line)
        else:
            stack[-1]["head"].append(line)


def _nft_text(family: str, name: str, table: dict) -> str:
    """The table as loadable text (what `nft list table` gives, in kvmnet's own layout)."""
    body = []
    for kind, group in (("set", table.get("sets", {})), ("map", table["maps"])):
        for mname, m in group.items():
            elems = ",\n".join(f"\t\t\t{e}" for e in m["elements"])
            body.append(f"\t{kind} {mname} {{\n" + "".join(f"\t\t{h}\n" for h in m["head"])
                        + f"\t\telements = {{\n{elems}\n\t\t}}\n\t}}")
    for cname, c in table["chains"].items():
        body.append(f"\tchain {cname} {{\n" + "".join(f"\t\t{line}\n" for line in c["head"] + c["rules"]) + "\t}")
    return f"table {family} {name} {{\n" + "\n".join(body) + "\n}\n"


def uplinked(cls: type | None = None, **kw) -> FakeHost:
    """A fake host (a FakeHost, or `cls`) with an uplink: eth0 192.0.2.10/24, default route via
    192.0.2.1 (what topologies/bridge.toml moves onto its bridge)."""
    return (cls or FakeHost)(**kw).with_nic("eth0", "52:54:00:00:00:01", ["192.0.2.10/24"], gateway="192.0.2.1")
