"""Two files with one topology name: the second is refused (naming both files) unless --replace,
so applying test/nat.toml never silently tears down what prod/nat.toml made."""

import pytest

pytestmark = pytest.mark.root


def test_another_file_with_the_same_topology_name_needs_replace(netns, topo_dir, tmp_path):
    prod, test = tmp_path / "prod" / "nat.toml", tmp_path / "test" / "nat.toml"
    for path, bridge in ((prod, "virbr0"), (test, "virbr9")):
        path.parent.mkdir()
        path.write_text((topo_dir / "nat.toml").read_text().replace('"virbr0"', f'"{bridge}"'))
    assert netns.kvmnet("apply", str(prod)).returncode == 0
    before = netns.snapshot()
    for verb in ("apply", "plan"):
        res = netns.kvmnet(verb, str(test))
        assert res.returncode == 2, res.stdout + res.stderr
        assert str(prod) in res.stderr and str(test) in res.stderr and "--replace" in res.stderr, res.stderr
    assert netns.snapshot() == before, "a refused apply changed the host"
    assert netns.kvmnet("apply", str(prod)).returncode == 0  # the same file, by another spelling too
    res = netns.kvmnet("apply", "--replace", str(test))
    assert res.returncode == 0, res.stderr
    links = netns.run("ip", "-br", "link").stdout
    assert "virbr9" in links and "virbr0" not in links
    assert netns.kvmnet("destroy", str(test)).returncode == 0
