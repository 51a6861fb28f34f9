"""The ARM wheel check's offline half: the serving list names what nirstream declares, and requirements are read for
aarch64, not for this machine. The check itself asks the package index, so `.ci/run` runs it
(`python -m nirstream.devtools.arm_wheels`), not the suite."""

from __future__ import annotations

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from nirstream.devtools.arm_wheels import BUILT_FROM_SOURCE, SERVING_DISTRIBUTIONS, declared, target_environment
from nirstream.devtools.dependencies import applies


def test_every_serving_distribution_is_declared_by_nirstream_with_its_range():
    found = declared(SERVING_DISTRIBUTIONS)
    assert [canonicalize_name(r.name) for r in found] == [canonicalize_name(n) for n in SERVING_DISTRIBUTIONS]
    assert set(BUILT_FROM_SOURCE) <= {canonicalize_name(n) for n in SERVING_DISTRIBUTIONS}


def test_requirements_are_read_for_aarch64_linux_and_the_target_python():
    arm = target_environment("3.12")
    assert applies(Requirement("uvloop; platform_machine == 'aarch64' and sys_platform == 'linux'"), (), arm)
    assert not applies(Requirement("intel-openmp; platform_machine == 'x86_64'"), (), arm)
    assert not applies(Requirement("tomli; python_version < '3.11'"), (), arm)
    assert not applies(Requirement("pytest; extra == 'test'"), (), arm)
