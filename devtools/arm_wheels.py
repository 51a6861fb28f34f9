"""``python -m nirstream.devtools.arm_wheels``: whether the serving install resolves to wheels for 64-bit ARM Linux
(manylinux aarch64), the small box beside an analyzer.

pip's own resolver answers, against the package index: ``pip install --dry-run --only-binary=:all: --platform
manylinux2014_aarch64 --platform manylinux_2_28_aarch64 --python-version 3.11 --implementation cp`` (the same
resolution as ``pip download`` with those options, reading each wheel's metadata instead of downloading it).
The serving install is nirstream's dependencies outside every extra, with its version ranges (its installed
``Requires-Dist``). It needs the index, so ``.ci/run`` runs it, not the test suite. ``--all`` also asks, one by
one, about the training extra's dependencies, and ``--write FILE`` records the answer as a result file.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name

from nirstream.core.provenance import write_result
from nirstream.devtools.dependencies import PROJECT, find, requirements, runtime_extras, serving_requirements

PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")
# Serving dependencies with no aarch64 wheel, installed on ARM from their sdist, with that sdist's build
# requirements (its pyproject's [build-system] requires): these must resolve to wheels instead, like its own
# runtime requirements. faust-streaming publishes x86_64 Linux wheels only; its sdist compiles optional Cython
# speed-ups and installs as pure Python where no compiler is found (setup.py's BuildFailed fallback).
BUILT_FROM_SOURCE = {"faust-streaming": ("setuptools>=69", "setuptools_scm[toml]", "wheel", "cython>=0.29")}
# A dependency published for aarch64 under another name: the wheel that an ARM install would take instead.
ARM_ALTERNATIVES = {"tensorflow-cpu": "tensorflow"}
RESULT = Path(__file__).resolve().parents[1] / "benchmarks/results/arm-wheels.json"


def target_environment(python_version: str) -> dict[str, str]:
    """The marker variables of CPython ``python_version`` on aarch64 Linux (for the requirements of a dependency
    that is installed here, on another machine)."""
    return {"platform_machine": "aarch64", "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
            "python_version": python_version, "python_full_version": f"{python_version}.0",
            "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def resolve(wanted: Sequence[str], python_version: str, *, with_dependencies: bool = True) -> dict:
    """pip's wheel-only resolution of ``wanted`` for aarch64: ``{"ok": bool, "wheels": [...], "error": str}``."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                   "--disable-pip-version-check", "--only-binary=:all:",
                   *(option for platform in PLATFORMS for option in ("--platform", platform)),
                   "--python-version", python_version, "--implementation", "cp", "--target", str(Path(scratch) / "t"),
                   "--report", str(report), *([] if with_dependencies else ["--no-deps"]), *wanted]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
            return {"ok": False, "wheels": [], "error": "\n".join(errors) or result.stderr.strip()[-2000:]}
        installs = json.loads(report.read_text())["install"]
    wheels = [{"name": canonicalize_name(item["metadata"]["name"]), "version": item["metadata"]["version"],
               "wheel": item["download_info"]["url"].rsplit("/", 1)[-1]} for item in installs]
    return {"ok": True, "wheels": sorted(wheels, key=lambda w: w["name"]), "error": ""}


def serving_check(python_version: str) -> dict:
    """The serving install, built-from-source exceptions replaced by their runtime and build requirements."""
    environment = target_environment(python_version)
    wanted, exceptions = [], {}
    for requirement in serving_requirements():
        name = canonicalize_name(requirement.name)
        if name not in BUILT_FROM_SOURCE:
            wanted.append(str(requirement))
            continue
        own = resolve([str(requirement)], python_version, with_dependencies=False)
        installed = find(name)
        runtime = [str(r) for r in requirements(installed, requirement.extras, environment)] if installed else []
        exceptions[name] = {"requirement": str(requirement), "has_aarch64_wheel_now": own["ok"],
                            "runtime_requirements_from": f"{name} {installed.version}" if installed else None,
                            "build_requirements": list(BUILT_FROM_SOURCE[name])}
        wanted += runtime + list(BUILT_FROM_SOURCE[name])
    outcome = resolve(wanted, python_version)
    failing = []
    if not outcome["ok"]:  # name the culprits: each requirement on its own, with its dependencies
        failing = [{"requirement": w, "error": r["error"]} for w in wanted
                   if not (r := resolve([w], python_version))["ok"]]
    return {"requirements": wanted, "resolves": outcome["ok"], "wheels": outcome["wheels"],
            "error": outcome["error"], "failing": failing, "built_from_source": exceptions}


def outside_serving_check(python_version: str) -> list[dict]:
    """Each dependency of nirstream's training extra (TensorFlow, the data readers, the search), on its own (without
    its dependencies): has it an aarch64 wheel?"""
    serving = {canonicalize_name(r.name) for r in serving_requirements()}
    project = metadata.distribution(PROJECT)
    others = [r for r in requirements(project, runtime_extras(project)) if canonicalize_name(r.name) not in serving]
    answers = []
    for requirement in others:
        outcome = resolve([str(requirement)], python_version, with_dependencies=False)
        wheel = outcome["wheels"][0]["wheel"] if outcome["ok"] else None
        answer = {"requirement": str(requirement), "aarch64_wheel": wheel,
                  "error": outcome["error"].splitlines()[0] if outcome["error"] else ""}
        alternative = ARM_ALTERNATIVES.get(canonicalize_name(requirement.name))
        if wheel is None and alternative:
            instead = f"{alternative}{requirement.specifier}"
            found = resolve([instead], python_version, with_dependencies=False)
            answer["alternative"] = {"requirement": instead,
                                     "aarch64_wheel": found["wheels"][0]["wheel"] if found["ok"] else None}
        answers.append(answer)
    return answers


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nirstream.devtools.arm_wheels", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python-version", default=f"{sys.version_info.major}.{sys.version_info.minor}",
                        help="the target CPython (default: this interpreter's)")
    parser.add_argument("--all", action="store_true", help="also report the training extra's dependencies, one by one")
    parser.add_argument("--write", nargs="?", const=RESULT, type=Path, metavar="FILE",
                        help="write the answer as JSON (default benchmarks/results/arm-wheels.json)")
    args = parser.parse_args(argv)
    serving = serving_check(args.python_version)
    result = {"platforms": list(PLATFORMS), "python_version": args.python_version, "serving": serving}
    for wheel in serving["wheels"]:
        print(f"  {wheel['name']} {wheel['version']}: {wheel['wheel']}")
    for name, exception in serving["built_from_source"].items():
        now = "HAS an aarch64 wheel now: drop it from BUILT_FROM_SOURCE" if exception["has_aarch64_wheel_now"] \
            else "no aarch64 wheel: installs from its sdist (its build and runtime requirements are checked above)"
        print(f"{name}: {now}")
    if args.all:
        result["outside_serving"] = outside_serving_check(args.python_version)
        for answer in result["outside_serving"]:
            print(f"  outside serving: {answer['requirement']}: {answer['aarch64_wheel'] or answer['error']}")
            if "alternative" in answer:
                print(f"    instead: {answer['alternative']['requirement']}: "
                      f"{answer['alternative']['aarch64_wheel'] or 'no aarch64 wheel either'}")
    if args.write:
        command = ["python", "-m", "nirstream.devtools.arm_wheels", *(sys.argv[1:] if argv is None else argv)]
        write_result(args.write, result, argv=command)
    if serving["resolves"]:
        print(f"the serving install resolves to aarch64 wheels for CPython {args.python_version} "
              f"({len(serving['wheels'])} wheels)")
        return 0
    print(f"the serving install does NOT resolve to aarch64 wheels:\n{serving['error']}", file=sys.stderr)
    for failure in serving["failing"]:
        print(f"  {failure['requirement']}: {failure['error']}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
