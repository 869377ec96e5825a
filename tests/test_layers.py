"""The package layers of docs/ARCHITECTURE.md, checked from the code's own imports.

Each room (a package under ``edge/``, or ``model_src``/``export``) has a floor; an import may only
point to a lower floor (or stay in its room), lazy imports inside functions included. A new
package must be given a floor here, and the size rule (no room over 18 % of the lines) is
checked too, so a room cannot quietly become the whole house again.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: docs/ARCHITECTURE.md's table of layers ("edge" is the package face: ``__version__`` only).
FLOORS = {
    "edge": 0,
    "edge.util": 1,
    "edge.contract": 2,
    "edge.camera": 3,
    "edge.keypoints": 3,
    "edge.transport": 3,
    "edge.captions": 3,
    "edge.recognition": 4,
    "edge.models": 5,
    "edge.daemon": 6,
    "edge.clips": 7,
    "edge.web": 8,
    "edge.mqtt": 8,
    "edge.speech": 8,
    "edge.dataset": 8,
    "edge.commands": 9,
    "model_src": 10,
    "export": 11,
}
#: No room may hold more than this share of the non-test lines (the page's static files count for web).
MAX_SHARE = 0.18


def _room(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "edge" and len(parts) > 1 and parts[1] != "__init__":
        return f"edge.{parts[1]}"
    return parts[0]


def _sources() -> list[Path]:
    return sorted(p for top in ("edge", "model_src", "export") for p in (ROOT / top).rglob("*.py"))


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] in ("edge", "model_src", "export")]


def test_every_room_has_a_floor() -> None:
    rooms = {_room(".".join(p.relative_to(ROOT).with_suffix("").parts)) for p in _sources()}
    assert rooms - set(FLOORS) == set(), "give the new package a floor in FLOORS and docs/ARCHITECTURE.md"


def test_imports_only_point_down() -> None:
    upward = []
    for path in _sources():
        source = _room(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for line, name in _imports(path):
            target = _room(name)
            if target != source and FLOORS[target] >= FLOORS[source]:
                upward.append(f"{path.relative_to(ROOT)}:{line} imports {name} ({source} → {target})")
    assert upward == []


def _lines(path: Path) -> int:
    return sum(1 for _ in path.open(encoding="utf-8", errors="replace"))


@pytest.mark.parametrize("room", sorted(r for r in FLOORS if r != "edge"))
def test_no_room_holds_more_than_its_share(room: str) -> None:
    kinds = {".py", ".js", ".css", ".html", ".sh", ".toml"}
    tracked = [
        p
        for top in ("edge", "model_src", "export", "benchmarks", "scripts", "systemd")
        for p in (ROOT / top).rglob("*")
        if p.is_file() and p.suffix in kinds and "__pycache__" not in p.parts
    ]
    total = sum(_lines(p) for p in tracked)
    directory = ROOT.joinpath(*room.split("."))
    mine = sum(_lines(p) for p in tracked if directory in p.parents)
    assert mine / total <= MAX_SHARE, f"{room} holds {mine} of {total} lines ({mine / total:.0%})"


def _module(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def test_no_module_imports_itself_round_a_circle() -> None:
    """No cycle between modules, inside a room too (type-only imports count: they tie two files)."""
    modules = {_module(p): p for p in _sources()}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            graph[name].update(t for t in targets if t in modules and t != name)
    circles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                circles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert circles == []
