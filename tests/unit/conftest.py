"""Fixtures the unit tests share."""

import pytest
from helpers.fakehost import uplinked

from kvmnet.host import system


@pytest.fixture
def host(monkeypatch):
    """The in-memory host, handed to everything that asks kvmnet.host.system for the host
    (the CLI, the hook's slow path, the engine)."""
    fake = uplinked()
    monkeypatch.setattr(system, "default", lambda: fake)
    return fake
