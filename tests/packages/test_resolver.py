"""The resolver against apt's own on the loopback repository: what `apt-get install -s --no-install-recommends`
would install on an empty system is what minibuild locks; and where apt cannot, neither can minibuild."""

from __future__ import annotations

import subprocess

import pytest

from minibuild.cache import Cache
from minibuild.packages.archive import Archive, load_release, load_universe
from minibuild.packages.index import Universe
from minibuild.packages.resolver import Unresolvable, resolve
from tests.packages.repo import SUITE, Apt, Repo


@pytest.fixture(scope="module")
def universe(shared_repo: Repo, tmp_path_factory: pytest.TempPathFactory) -> Universe:
    archive = Archive(shared_repo.url, SUITE, (str(shared_repo.keyring),))
    cache = Cache(str(tmp_path_factory.mktemp("cache")))
    return load_universe(archive, load_release(archive, cache), ("main",), "amd64", cache)


@pytest.fixture(scope="module")
def apt(shared_repo: Repo, tmp_path_factory: pytest.TempPathFactory) -> Apt:
    return Apt(shared_repo, tmp_path_factory.mktemp("apt"))


@pytest.mark.parametrize("packages", [
    ["jq"], ["hello"], ["hello", "jq"],
    ["syn-app"],  # alternatives, a virtual package, `:any` on Multi-Arch: allowed, Pre-Depends on an `all` package
    ["syn-alt-second"],  # the first alternative does not exist
    ["syn-wants-vp"],  # versioned Provides
    ["syn-app", "syn-libold"],  # an alternative already chosen is kept
    ["syn-prov-one", "syn-app"],
])
def test_closure_is_what_apt_installs(universe, apt, packages):
    expected = apt.install(packages)
    assert isinstance(expected, dict), expected
    got = {name: r.package.version for name, r in resolve(universe, packages).items()}
    assert got == expected


@pytest.mark.parametrize("packages, missing", [
    (["syn-needs-any"], "syn-notany:any"),  # not Multi-Arch: allowed
    (["syn-top"], "syn-missing (>= 1)"),
    (["syn-wants-vp3"], "syn-vp (>= 3)"),  # the Provides is versioned 2.0
    (["no-such-package"], "no-such-package"),
])
def test_unresolvable_where_apt_fails_with_the_chain(universe, apt, packages, missing):
    assert isinstance(apt.install(packages), str)
    with pytest.raises(Unresolvable) as err:
        resolve(universe, packages)
    assert f"cannot resolve `{missing}`" in err.value.message


def test_the_error_names_the_whole_chain(universe):
    with pytest.raises(Unresolvable) as err:
        resolve(universe, ["hello", "syn-top"])
    assert "needed by `syn-top`" in err.value.message
    assert err.value.causes[:3] == ("`syn-top` is requested in `packages`", "`syn-top 1.0` depends on `syn-middle`",
                                    "`syn-middle 1.0` depends on `syn-missing (>= 1)`")
    assert "no package `syn-missing`" in err.value.causes[3]


def _dpkg_lt(a: str, b: str) -> bool:
    return subprocess.run(["dpkg", "--compare-versions", a, "lt", b]).returncode == 0


def test_an_older_version_is_taken_when_a_constraint_needs_it(universe):
    """apt takes only the newest version of a name (and gives up here); minibuild takes the newest version that
    meets the constraint. Checked against dpkg's ordering: 1.0 is the only version below 2.0."""
    got = resolve(universe, ["syn-oldonly"])["syn-liba"].package.version
    versions = [p.version for p in universe.packages["syn-liba"]]
    assert [v for v in versions if _dpkg_lt(v, "2.0")] == [got] == ["1.0"]


def test_locked_versions_are_preferred_while_offered(universe):
    assert resolve(universe, ["syn-app"])["syn-liba"].package.version == "3.0~rc1"
    assert resolve(universe, ["syn-app"], prefer={"syn-liba": "2.0"})["syn-liba"].package.version == "2.0"
    assert resolve(universe, ["syn-app"], prefer={"syn-liba": "0.5"})["syn-liba"].package.version == "3.0~rc1"


def test_essential_packages_only_when_asked(universe):
    assert "syn-ess" not in resolve(universe, ["hello"])
    assert "syn-ess" in resolve(universe, ["hello"], essential=True)
    # an Essential: yes package of the index, as `apt-cache show` tells it
    assert universe.essential() == ["syn-ess"]


def test_pulled_by_names_the_dependents(universe):
    chosen = resolve(universe, ["hello", "jq"])
    assert chosen["libc6"].pulled_by == ("hello", "jq", "libgcc-s1", "libjq1", "libonig5")
    assert chosen["hello"].requested and chosen["hello"].pulled_by == ()
    assert not chosen["libc6"].requested
