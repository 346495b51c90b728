import pytest
from labkit.guest import skip_reason

from helpers.lab import Lab, failed

_skip = skip_reason()


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/lab/" in str(item.fspath):
            item.add_marker(pytest.mark.slow)
            if _skip:
                item.add_marker(pytest.mark.skip(reason=f"lab with real guests: {_skip}"))


@pytest.fixture
def make_lab(request):
    """make_lab(topology, backend="nftables") -> Lab; torn down after the test."""
    labs = []

    def make(topology, backend="nftables"):
        lab = Lab(topology, backend)
        labs.append(lab)
        return lab

    yield make
    for lab in labs:
        lab.close(request.node.name if failed(request) else None)
