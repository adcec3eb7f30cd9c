"""The package's imports only point down the layers of README "How the code is laid out", and never in a cycle.

Every ``import`` counts, also the lazy ones inside functions and those under ``TYPE_CHECKING``;
the one exception is the lazy ``load`` in ``gancompress/__init__.py`` (the public shortcut to
:func:`gancompress.api.load`). Modules of one layer may import each other, without cycles.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gancompress"

# bottom to top; a module belongs to the layer of its longest listed prefix
LAYERS: list[tuple[str, ...]] = [
    ("version", "errors", "registry", "io_utils", "progress", "devices"),
    ("layer_table", "archs"),
    ("formats",),
    ("sources", "loading", "generation"),
    ("data", "traced_inputs", "channels", "metrics"),
    ("prune", "losses", "export"),
    ("finetune", "evaluate", "inspection"),
    ("recipe", "sensitivity"),
    ("sweep", "demo"),
    ("api",),
    ("cli", "__main__"),
]
ALLOWED = {("gancompress", "gancompress.api")}  # the lazy load() in __init__.py


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _targets(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        for name in names:
            while name not in modules and "." in name:
                name = name.rsplit(".", 1)[0]
            if name in modules and name != module:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _targets(m, p, modules) for m, p in modules.items()}


def layer_of(module: str) -> int | None:
    if module == "gancompress":
        return len(LAYERS)  # the package's __init__: above everything (it only re-exports)
    rest = module.removeprefix("gancompress.")
    for level, names in enumerate(LAYERS):
        if any(rest == n or rest.startswith(n + ".") for n in names):
            return level
    return None


def test_every_module_has_a_layer():
    assert [m for m in import_graph() if layer_of(m) is None] == []


def test_no_import_climbs_a_layer():
    climbs = [f"{m} (layer {layer_of(m)}) imports {t} (layer {layer_of(t)})"
              for m, targets in import_graph().items() for t in sorted(targets)
              if (m, t) not in ALLOWED and layer_of(t) > layer_of(m)]
    assert climbs == []


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph.get(m, ())):
            if (m, t) in ALLOWED:
                continue
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state and (found := visit(t)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_cycle():
    assert _cycle(import_graph()) is None


@pytest.mark.parametrize("graph, cyclic", [({"a": {"b"}, "b": {"c"}, "c": {"a"}}, True),
                                           ({"a": {"b", "c"}, "b": {"c"}, "c": set()}, False)])
def test_the_cycle_finder_finds_cycles(graph, cyclic):
    assert (_cycle(graph) is not None) == cyclic
