"""The wheel's package list (pyproject.toml) names every package of the checkout: the
suites and profiles are mapped in from the top level, which `packages.find` cannot see, so
the list is written out, and a package added later must not be left out of the wheel."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from harness import shipped

ROOT = Path(__file__).resolve().parents[2]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def packages_under(directory: Path, name: str) -> set[str]:
    return {
        ".".join([name, *init.parent.relative_to(directory).parts])
        for init in directory.rglob("__init__.py")
    }


def test_every_package_is_in_the_wheel() -> None:
    on_disk = packages_under(ROOT / "harness", "harness") | packages_under(
        ROOT / "suites", "harness.suites"
    )
    assert set(SETUPTOOLS["packages"]) == on_disk | {"harness.fixtures"}, (
        "pyproject.toml [tool.setuptools] packages must list exactly these"
    )


def test_suites_and_profiles_ship_from_their_one_copy() -> None:
    assert SETUPTOOLS["package-dir"] == {
        "harness.suites": "suites",
        "harness.fixtures": "fixtures",
    }
    assert SETUPTOOLS["package-data"] == {
        "harness": ["templates/*.j2"],  # the pages over several runs (harness.pages)
        "harness.fixtures": ["*.toml"],
        "harness.suites": ["run.ini"],  # the settings of `redis-cluster-harness run`
        "harness.htmlreport": ["templates/*.j2"],  # the report page's Jinja2 template
    }
    assert (
        not (ROOT / "harness" / "suites").exists() and not (ROOT / "harness" / "fixtures").exists()
    )


def test_every_suite_directory_is_a_package() -> None:
    """Test modules are imported as harness.suites.<suite>.<module> once installed (and as
    suites.<suite>.<module> in a checkout): every directory with tests needs its
    __init__.py, or pytest imports it by its basename."""
    for test in (ROOT / "suites").rglob("test_*.py"):
        for directory in test.relative_to(ROOT).parents:
            if directory != Path("."):
                assert (ROOT / directory / "__init__.py").is_file(), directory


def test_a_checkout_finds_its_own_suites_and_profiles() -> None:
    assert shipped.data_dir("suites") == ROOT / "suites"
    assert shipped.data_dir("fixtures") == ROOT / "fixtures"


def test_an_installed_package_uses_its_own_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "site-packages" / "harness"
    (package / "suites").mkdir(parents=True)
    (tmp_path / "site-packages" / "suites").mkdir()  # someone else's top-level "suites"
    monkeypatch.setattr(shipped, "PACKAGE", package)
    assert shipped.data_dir("suites") == package / "suites"
