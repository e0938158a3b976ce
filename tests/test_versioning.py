"""The version is written once (`minidpo.__version__`) and everything that names it agrees.

Mutations caught: a version bumped in one place only (package, CITATION.cff, its preferred citation, the
CHANGELOG's newest entry, the README's BibTeX, pyproject.toml typing its own)."""

import re
from pathlib import Path

import pytest
import yaml

try:
    import tomllib  # Python 3.11+
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

import minidpo

ROOT = Path(__file__).resolve().parents[1]


def test_citation_cff_names_the_packages_version_and_a_report():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["version"] == minidpo.__version__
    assert cff["preferred-citation"]["type"] == "report"
    assert cff["preferred-citation"]["version"] == minidpo.__version__


def test_the_changelogs_newest_entry_is_this_version_and_dated_as_released():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    versions = re.findall(r"^## (\d+\.\d+\.\d+) \u2014 (\d{4}-\d{2}-\d{2})$", changelog, re.M)
    assert versions and versions[0][0] == minidpo.__version__
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert str(cff["date-released"]) == versions[0][1]


def test_pyproject_reads_the_version_from_the_package():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "minidpo.__version__"}


def test_the_readmes_bibtex_cites_this_version():
    readme = (ROOT / "README.md").read_text()
    assert re.findall(r"type\s*=\s*\{Technical report, version ([0-9.]+)\}", readme) == [minidpo.__version__]
