"""kvmnet/gcpause.py: the collector is off inside, and afterwards as it was before, errors included."""

from __future__ import annotations

import gc

import pytest

from kvmnet import gcpause


@pytest.mark.parametrize("was_on", [True, False])
def test_the_collector_is_paused_inside_and_restored_after_even_on_error(was_on):
    (gc.enable if was_on else gc.disable)()
    try:
        with gcpause.paused():
            assert not gc.isenabled()
        assert gc.isenabled() is was_on
        with pytest.raises(KeyError):
            with gcpause.paused():
                raise KeyError("x")
        assert gc.isenabled() is was_on
    finally:
        gc.enable()
