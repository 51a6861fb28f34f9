"""No runtime dependency of nirstream carries a GPL or AGPL licence, and docs/licences.md, the generated list of
their licences, names every dependency nirstream declares with the category its licence still falls in.

The committed list is not compared version by version: CI installs the newest releases the pins allow, whose
versions (and transitive dependencies) move; what must not move unnoticed is a licence's category."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from nirstream.devtools.dependencies import NOT_RUNTIME_EXTRAS
from nirstream.devtools.licence_report import (COMMITTED, PERMISSIVE, STRONG, UNKNOWN, WEAK, expression_category,
                                               parse, refused, render, report)

REPO = Path(__file__).resolve().parents[1]


def test_the_installed_runtime_dependencies_carry_no_gpl_or_agpl_licence():
    result = subprocess.run([sys.executable, "-m", "nirstream.devtools.licence_report"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "asyncua (GNU Lesser General Public License" in result.stdout  # LGPL: reported, allowed


def test_the_committed_list_names_every_dependency_nirstream_declares():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    declared += [line for extra, lines in project.get("optional-dependencies", {}).items()
                 if extra not in NOT_RUNTIME_EXTRAS for line in lines]
    listed = parse(COMMITTED.read_text())
    missing = {canonicalize_name(Requirement(line).name) for line in declared} - set(listed)
    assert not missing, f"regenerate {COMMITTED.name} (python -m nirstream.devtools.licence_report --write): {missing}"


def test_each_listed_licence_still_falls_in_the_category_the_list_shows():
    listed = parse(COMMITTED.read_text())
    _, rows = report()
    now = {row.dependency.name: row.licence.category for row in rows if row.dependency.name in listed}
    assert now, "no listed dependency is installed"
    assert now == {name: listed[name] for name in now}


@pytest.mark.parametrize(("expression", "category"), [
    ("MIT", PERMISSIVE),
    ("BSD-3-Clause AND 0BSD AND MIT AND Zlib AND CC0-1.0", PERMISSIVE),
    ("MPL-2.0 AND (Apache-2.0 OR MIT)", WEAK),
    ("GNU Lesser General Public License v3 or later", WEAK),
    ("GPL-3.0-or-later WITH GCC-exception-3.1", WEAK),
    ("MIT OR GPL-3.0-only", PERMISSIVE),
    ("MIT AND GPL-2.0-only", STRONG),
    ("(MIT OR Apache-2.0) AND AGPL-3.0-only", STRONG),
    ("CeCILL-2.1 OR AGPL-3.0-or-later", STRONG),
    ("BSD-derived (Repoze)", PERMISSIVE),
    ("Proprietary", UNKNOWN),
])
def test_an_expression_falls_in_its_category(expression, category):
    assert expression_category(expression) == category


def write_distribution(site: Path, name: str, fields: list[str], licence_file: str | None = None) -> None:
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.4", f"Name: {name}", "Version: 1.0", *fields]
    if licence_file is not None:
        (info / "licenses").mkdir()
        (info / "licenses/LICENSE").write_text(licence_file)
        lines.append("License-File: LICENSE")
    (info / "METADATA").write_text("\n".join(lines) + "\n")


def test_a_gpl_dependency_is_refused_wherever_it_sits_and_an_extra_counts_only_when_asked_for(tmp_path):
    site = tmp_path / "site"
    write_distribution(site, "plant-app", ["Requires-Dist: lesser-lib", "Requires-Dist: dual-lib",
                                           "Requires-Dist: bench-tool; extra == 'bench'", "Provides-Extra: bench"])
    write_distribution(site, "lesser-lib", ["Classifier: License :: OSI Approved :: GNU Lesser General Public "
                                            "License v3 (LGPLv3)", "Requires-Dist: copyleft-lib>=1"])
    write_distribution(site, "copyleft-lib", ["License-Expression: GPL-3.0-only"])
    write_distribution(site, "dual-lib", [], licence_file="Copyright 2024\n\nLicensed under the Apache License, "
                                                          "Version 2.0 (the \"License\");\n")
    write_distribution(site, "bench-tool", ["License: AGPL-3.0-or-later"])

    _, rows = report("plant-app", extras=(), path=[str(site)])
    found = {row.dependency.name: (row.licence.category, row.dependency.required_by) for row in rows}
    assert found == {"lesser-lib": (WEAK, "plant-app"), "copyleft-lib": (STRONG, "lesser-lib"),
                     "dual-lib": (PERMISSIVE, "plant-app")}
    assert [row.dependency.name for row in refused(rows)] == ["copyleft-lib"]
    assert "| dual-lib | 1.0 | Apache-2.0 | licence file LICENSE | permissive | plant-app |" in render((), rows)

    _, rows = report("plant-app", extras=("bench",), path=[str(site)])
    assert [row.dependency.name for row in refused(rows)] == ["bench-tool", "copyleft-lib"]
