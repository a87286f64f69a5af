"""The house's layering (docs/architecture.md), checked over the source with ``ast``.

Every import between the package's parts (``astrocnn.<part>``, a folder or a top-level module) must go down
the layers or stay within its part: models < core < domains (spectra, gw: neither imports the other) < tasks
< train < apps. Imports inside functions count too. No module imports a private name of another, and no
function grows past ~80 lines without a stated reason.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "astrocnn"

#: layer of each part; parts on one layer may not import each other
LAYERS = {
    "astrocnn.version": 0, "astrocnn.models": 1, "astrocnn.core": 2,
    "astrocnn.spectra": 3, "astrocnn.gw": 3, "astrocnn.tasks": 4, "astrocnn.train": 5, "astrocnn.zoo": 6,
    "astrocnn.apps": 7,
    "astrocnn.__main__": 8, "astrocnn": 8,  # the package itself: the front door, which nothing inside imports
}
#: functions allowed past the length limit, with the reason (each also states it in its own body)
LONG_FUNCTIONS = {"observe", "simulate_quasar", "simulate_object", "build_templates", "fit_redshift"}
MAX_LINES = 80


def _modules() -> dict[str, Path]:
    mods = {}
    for p in SRC.rglob("*.py"):
        name = ".".join(("astrocnn",) + p.relative_to(SRC).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = p
    return mods


def _imports(name: str, path: Path):
    """``(imported module, imported name, line)`` for every ``from astrocnn... import`` in a module."""
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("astrocnn"):
                    yield a.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if base.startswith("astrocnn"):
                for a in node.names:
                    yield base, a.name, node.lineno


def _part(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_every_part_has_a_layer():
    parts = {_part(m) for m in _modules()}
    assert parts <= set(LAYERS), f"parts without a layer in this test and in docs/architecture.md: {parts - set(LAYERS)}"


def test_imports_go_down_the_layers():
    mods = _modules()
    wrong = []
    for name, path in mods.items():
        here = _part(name)
        for module, alias, line in _imports(name, path):
            target = f"{module}.{alias}" if alias and f"{module}.{alias}" in mods else module
            there = _part(target)
            if there != here and LAYERS[there] >= LAYERS[here]:
                wrong.append(f"{path.relative_to(SRC)}:{line} ({here}, layer {LAYERS[here]}) imports {target} "
                             f"(layer {LAYERS[there]})")
    assert not wrong, "imports that go up or sideways:\n" + "\n".join(wrong)


def test_no_private_name_crosses_a_module():
    mods = _modules()
    private = []
    for name, path in mods.items():
        for module, alias, line in _imports(name, path):
            names = [alias] if alias else []
            names += [p for p in module.split(".")]
            for n in names:
                if n.startswith("_") and not n.startswith("__"):
                    private.append(f"{path.relative_to(SRC)}:{line}: {module} {alias or ''}")
    assert not private, "private names imported from another module:\n" + "\n".join(private)


def test_no_cycles_between_parts():
    mods = _modules()
    edges: dict[str, set[str]] = {}
    for name, path in mods.items():
        for module, alias, _ in _imports(name, path):
            target = f"{module}.{alias}" if alias and f"{module}.{alias}" in mods else module
            if _part(target) != _part(name):
                edges.setdefault(_part(name), set()).add(_part(target))
    seen: set[str] = set()

    def visit(node: str, stack: list[str]) -> None:
        if node in stack:
            pytest.fail("import cycle: " + " > ".join(stack[stack.index(node):] + [node]))
        if node in seen:
            return
        seen.add(node)
        for nxt in sorted(edges.get(node, ())):
            visit(nxt, stack + [node])

    for start in sorted(edges):
        visit(start, [])


def test_functions_stay_short_or_say_why():
    long = []
    for path in SRC.rglob("*.py"):
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_LINES:
                    body = "\n".join(source.splitlines()[node.lineno - 1:node.end_lineno])
                    if node.name not in LONG_FUNCTIONS or "Long because" not in body:
                        long.append(f"{path.relative_to(SRC)}: {node.name} ({n} lines)")
    assert not long, "functions over ~80 lines without a stated reason:\n" + "\n".join(long)


def test_modules_say_where_they_sit():
    """Every module has a docstring; the packages' docstrings name their layer."""
    missing = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if ast.get_docstring(ast.parse(p.read_text())) is None]
    assert not missing, f"modules without a docstring: {missing}"
    for pkg in ("core", "spectra", "gw", "tasks", "train", "apps"):
        doc = ast.get_docstring(ast.parse((SRC / pkg / "__init__.py").read_text())) or ""
        assert "layer" in doc.lower(), f"astrocnn.{pkg}'s docstring does not say its layer"
