"""The house rules of docs/architecture.md: which room may import which, and no import circle."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"nirstream": ROOT / "nirstream", "nirstream.stream": ROOT / "stream",
           "nirstream.trainer": ROOT / "trainer", "nirstream.devtools": ROOT / "devtools"}
CORE_ROOMS = ("messages", "chemometrics", "runtimes", "artifacts", "serving", "datasets")  # ground floor first
TOP_ROOMS = ("kafka", "ingest", "stream", "trainer", "devtools", "cli")
# room -> the rooms it may import (besides itself and the package root's __version__)
ALLOWED = {
    "core": {"core.messages"},
    "core.messages": {"core"},
    "core.chemometrics": {"core", "core.messages"},
    "core.runtimes": {"core"},
    "core.artifacts": {"core", "core.messages", "core.chemometrics", "core.runtimes"},
    "core.serving": {"core", "core.messages", "core.chemometrics", "core.runtimes", "core.artifacts"},
    "core.datasets": {"core", "core.messages", "core.chemometrics", "core.artifacts"},
}
CORE = {"core", *(f"core.{r}" for r in CORE_ROOMS)}
ALLOWED |= {"kafka": CORE, "ingest": CORE | {"kafka"}, "stream": CORE | {"kafka"}, "trainer": CORE | {"kafka"},
            "devtools": CORE | {"kafka", "ingest", "stream", "trainer"},
            "cli": CORE | {"kafka", "ingest", "stream", "trainer", "devtools"}}


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if package == "nirstream" and parts[0] in ("stream", "trainer", "devtools"):
                continue
            name = ".".join((package, *parts)).removesuffix(".__init__")
            found[name] = path
    return found


def room(module: str) -> str:
    parts = module.split(".")[1:]
    if not parts or parts[0] == "__main__":
        return "cli"
    if parts[0] == "core":
        return f"core.{parts[1]}" if len(parts) >= 2 and parts[1] in CORE_ROOMS else "core"
    return parts[0]


def imports() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                module = ".".join(base + ([node.module] if node.module else []))
                targets = [module, *(f"{module}.{a.name}" for a in node.names)]
            else:
                continue
            edges[name] |= {t for t in targets if t in known and t != name}
    return edges


def test_every_room_imports_only_the_rooms_below_it():
    wrong = sorted(f"{source} -> {target}" for source, targets in imports().items() for target in targets
                   if target != "nirstream" and room(target) != room(source)
                   and room(target) not in ALLOWED[room(source)])
    assert wrong == []


def test_no_import_circle():
    edges = imports()
    circles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                circles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert circles == []
