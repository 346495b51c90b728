"""What one plan wants of the host: a key per fact, and for each fact that does not hold yet
the action that makes it hold, paired with the step that undoes it. Each concern's planner
(links, sysctls, firewall, dnsmasq) fills one of these; plan/__init__ composes them."""

from __future__ import annotations

from ...observed import Observed
from ..steps import Action, Step


class Facts:
    def __init__(self, observed: Observed):
        self.obs = observed
        self.actions: list[Action] = []
        self.wanted: set[str] = set()

    def want(self, key: str, do: Step | None, undo: Step | None = None, kind: str = "create") -> None:
        """Register a fact; `do` is None when it already holds. A key wanted twice (two NAT
        networks both need ip_forward) is planned once."""
        if key in self.wanted:
            return
        self.wanted.add(key)
        if do is not None:
            self.actions.append(Action(key, kind, do, undo))
