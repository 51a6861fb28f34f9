"""The ARM wheel check's offline half: the serving list is nirstream's declared base dependencies, and requirements
are read for aarch64, not for this machine. The check itself asks the package index, so `.ci/run` runs it
(`python -m nirstream.devtools.arm_wheels`), not the suite."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from nirstream.devtools.arm_wheels import BUILT_FROM_SOURCE, target_environment
from nirstream.devtools.dependencies import applies, serving_requirements

ROOT = Path(__file__).resolve().parents[1]


def test_the_serving_requirements_are_pyprojects_base_dependencies_with_their_ranges():
    base = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert sorted(map(str, serving_requirements())) == sorted(str(Requirement(line)) for line in base)
    assert set(BUILT_FROM_SOURCE) <= {canonicalize_name(r.name) for r in serving_requirements()}


def test_requirements_are_read_for_aarch64_linux_and_the_target_python():
    arm = target_environment("3.12")
    assert applies(Requirement("uvloop; platform_machine == 'aarch64' and sys_platform == 'linux'"), (), arm)
    assert not applies(Requirement("intel-openmp; platform_machine == 'x86_64'"), (), arm)
    assert not applies(Requirement("tomli; python_version < '3.11'"), (), arm)
    assert not applies(Requirement("pytest; extra == 'test'"), (), arm)
