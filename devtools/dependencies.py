"""nirstream's dependencies as the installed metadata declares them (``Requires-Dist``), with their markers
evaluated: the one reading that the licence report and the ARM wheel check share, so both see what pip installs."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = "nirstream"
# Extras that no serving or training install carries: the development tools (embedded broker, tests, docs site) and
# the benchmarks' peers (nirs4all-aom, CeCILL-2.1 or AGPL-3.0, is one of them; it is never imported by nirstream).
NOT_RUNTIME_EXTRAS = frozenset({"dev", "bench", "peers"})


def applies(requirement: Requirement, extras: Iterable[str] = (),
            environment: Mapping[str, str] | None = None) -> bool:
    """Whether ``requirement`` is installed here (or in ``environment``) when the distribution is asked for with
    ``extras``: a requirement of an extra applies only when that extra is asked for."""
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({**(environment or {}), "extra": extra}) for extra in ("", *extras))


def requirements(distribution: metadata.Distribution, extras: Iterable[str] = (),
                 environment: Mapping[str, str] | None = None) -> list[Requirement]:
    """The requirements of ``distribution`` that apply with ``extras``."""
    extras = tuple(extras)
    found = (Requirement(line) for line in distribution.requires or [])
    return [requirement for requirement in found if applies(requirement, extras, environment)]


def serving_requirements(distribution: metadata.Distribution | None = None) -> list[Requirement]:
    """What ``pip install nirstream`` installs: the dependencies outside every extra (pyproject's ``dependencies``),
    read from the installed metadata of ``distribution`` (default: nirstream's)."""
    distribution = distribution or metadata.distribution(PROJECT)
    return requirements(distribution)


def runtime_extras(distribution: metadata.Distribution) -> tuple[str, ...]:
    """The extras a serving or training install may carry (all but the test and benchmark extras)."""
    declared = distribution.metadata.get_all("Provides-Extra") or []
    return tuple(sorted(extra for extra in declared if extra not in NOT_RUNTIME_EXTRAS))


def find(name: str, path: Sequence[str] | None = None) -> metadata.Distribution | None:
    """The installed distribution called ``name`` (first on ``path``, default ``sys.path``), or None."""
    kwargs = {"name": name} if path is None else {"name": name, "path": list(path)}
    return next(iter(metadata.distributions(**kwargs)), None)


@dataclass(frozen=True)
class Dependency:
    """One distribution in the tree: its installed metadata (None when it is not installed) and what needs it."""

    name: str
    distribution: metadata.Distribution | None
    required_by: str

    @property
    def version(self) -> str:
        return self.distribution.version if self.distribution is not None else "not installed"


def dependency_tree(root: str = PROJECT, extras: Iterable[str] = (),
                    path: Sequence[str] | None = None) -> list[Dependency]:
    """Every distribution ``root`` needs with ``extras``, recursively (each one's own requirements with the extras
    its dependents ask of it), in breadth-first order; ``root`` itself is not listed."""
    top = find(root, path)
    if top is None:
        raise LookupError(f"{root} is not installed")
    extras_of: dict[str, set[str]] = {canonicalize_name(root): set(extras)}
    tree: dict[str, Dependency] = {}
    queue = deque([(top, tuple(extras), root)])
    while queue:
        distribution, asked, name = queue.popleft()
        for requirement in requirements(distribution, asked):
            key = canonicalize_name(requirement.name)
            known = extras_of.setdefault(key, set())
            if key in tree and requirement.extras <= known:
                continue
            known |= requirement.extras
            found = tree[key].distribution if key in tree else find(requirement.name, path)
            tree.setdefault(key, Dependency(key, found, name))
            if found is not None:
                queue.append((found, tuple(sorted(known)), key))
    return list(tree.values())
