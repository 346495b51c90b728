"""An in-memory stand-in for the three kvmnet.host.rtnl calls QEMU's hook makes (index_of,
read_mtu, set_link), backed by a FakeHost's links so the hook and the engine see one host.

    links = FakeRtnl(host).install(monkeypatch)
    links.add_tap("tap7")            # what QEMU does before it runs script=
    links.closes("tap7")             # QEMU closes tap7 while the hook's set_link is in flight
    links.refuse(errno.EPERM)        # the next set_link fails with EPERM
"""

from __future__ import annotations

import errno

from kvmnet.host import rtnl
from kvmnet.host.netlink_error import NetlinkError


class FakeRtnl:
    def __init__(self, host):
        self.host = host
        self.calls: list[tuple[str, dict]] = []  # (name, attributes) of each set_link that took effect
        self._closing: set[str] = set()
        self._refusals: list[int] = []

    def install(self, monkeypatch) -> "FakeRtnl":
        for name in ("index_of", "read_mtu", "set_link"):
            monkeypatch.setattr(rtnl, name, getattr(self, name))
        return self

    # ------------------------------------------------------------ setting the scene

    def add_tap(self, name: str, mtu: int = 1500) -> None:
        """A tap QEMU opened: no master, down."""
        self.host._add_link(name, "tun", mtu=mtu)
        self.host.links_[name].update(up=False)

    def closes(self, name: str) -> None:
        self._closing.add(name)

    def refuse(self, code: int) -> None:
        self._refusals.append(code)

    # ------------------------------------------------------------ rtnl's interface

    def index_of(self, name: str) -> int | None:
        link = self.host.links_.get(name)
        return link["index"] if link else None

    def read_mtu(self, name: str) -> int | None:
        link = self.host.links_.get(name)
        return link["mtu"] if link else None

    def set_link(self, name: str, *, master: int | None = None, mtu: int | None = None,
                 up: bool | None = None, mac: str | None = None, group: int | None = None) -> None:
        op = f"set link {name}"
        if name in self._closing:
            self._closing.discard(name)
            self.host._link_del({"name": name})
        if self._refusals:
            raise NetlinkError(self._refusals.pop(0), op)
        link = self.host.links_.get(name)
        if link is None:
            raise NetlinkError(errno.ENODEV, op)
        if master is not None:
            by_index = {attrs["index"]: n for n, attrs in self.host.links_.items()}
            if master and master not in by_index:
                raise NetlinkError(errno.ENODEV, op)
            link["master"] = by_index[master] if master else None
        for key, value in (("mtu", mtu), ("up", up), ("mac", mac), ("group", group)):
            if value is not None:
                link[key] = value
        self.calls.append((name, {k: v for k, v in (("master", master), ("mtu", mtu), ("up", up))
                                  if v is not None}))
