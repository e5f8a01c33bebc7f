"""The package's layering, read from its imports (``ast`` only, nothing is imported).

Floors, bottom to top: the contract and the checks; ``sequence/`` and ``tasks/``; ``cells/``
and ``combinators/``; the adapters and tools; the programs. A module imports only from its
own floor's package or below; ``cells/`` and ``combinators/`` never import each other; only
``linen/`` (and ``nnx/``) import flax, only ``training/`` (and the programs) optax.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gatedcells"

# the parts of the package each part may import (itself always allowed)
ALLOWED = {
    "_cell": {"_checks"},
    "_checks": set(),
    "_values": {"_checks"},
    "sharding": set(),
    "sequence": {"_cell", "_checks"},
    "tasks": {"_cell", "_checks"},
    "cells": {"_cell", "_checks", "sequence"},
    "combinators": {"_cell", "_checks", "sequence"},
}
LOW = {"_cell", "_checks", "_values", "_cores", "sequence", "tasks", "cells", "combinators"}
ALLOWED |= {
    "diagnostics": LOW,
    "interop": LOW,
    "linen": LOW,
    "nnx": LOW,
    "training": LOW,
}
PROGRAMS = {"zoo", "bench", "cli"}
# third-party packages a part may import (jax and numpy are everyone's)
THIRD_PARTY = {"flax": {"linen", "nnx", "interop", "bench"}, "optax": {"training"} | PROGRAMS}


def part_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 else rel.stem


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """``(absolute module, line, at module level)`` of every import in ``path``."""
    tree = ast.parse(path.read_text())
    package = ".".join(("gatedcells", *path.relative_to(PACKAGE).parent.parts))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module
            names = [f"{name}.{a.name}" for a in node.names] if not node.module else [name]
            found += [(n, node.lineno, id(node) in top) for n in names]
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_floors(path):
    part = part_of(path)
    for name, line, _ in imports(path):
        root, _, rest = name.partition(".")
        where = f"{path.relative_to(PACKAGE)}:{line} imports {name}"
        if root in THIRD_PARTY:
            assert part in THIRD_PARTY[root], where
        if root != "gatedcells" or not rest or part in PROGRAMS:
            continue
        target = rest.split(".")[0]
        if target != part:
            assert target in ALLOWED.get(part, set()), where


def test_no_import_cycle_between_modules():
    """A module-level import graph without cycles (a function-level import of a sibling, the
    usual way to hide one, counts as an arrow too)."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).with_suffix("")
        name = ".".join(("gatedcells", *rel.parts)).removesuffix(".__init__")
        graph[name] = {n for n, _, _ in imports(path) if n.startswith("gatedcells.")}
    modules = set(graph)

    def resolve(name):  # "gatedcells.cells.lstm" names an attribute of a package
        while name not in modules and "." in name:
            name = name.rsplit(".", 1)[0]
        return name

    edges = {m: {resolve(n) for n in targets} - {m} for m, targets in graph.items()}
    # a package's __init__ re-exports its modules: an arrow into a package from outside it is
    # an arrow into the modules it re-exports, which must not lead back to the importer
    state = {}

    def visit(m, stack):
        state[m] = "open"
        for n in edges.get(m, ()):
            if m.startswith(n + ".") or n == "gatedcells":
                continue  # a module importing its own package's re-exports
            if state.get(n) == "open":
                cycle = stack[stack.index(n) :] + [n] if n in stack else [m, n]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n, [*stack, n])
        state[m] = "done"

    for m in sorted(modules):
        if m not in state:
            visit(m, [m])


def test_no_file_over_360_lines():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 360
    }
    assert not long, long


def test_no_function_over_80_lines_of_code():
    """Lines of code, docstrings aside."""
    long = {}
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                body = node.body
                if (
                    body
                    and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant)
                ):
                    start = body[0].end_lineno + 1 if len(body) > 1 else node.end_lineno
                    start = body[1].lineno if len(body) > 1 else start
                else:
                    start = body[0].lineno
                n = node.end_lineno - start + 1
                if n > 80:
                    long[f"{path.relative_to(PACKAGE)}:{node.name}"] = n
    assert not long, long


def test_the_tests_mirror_the_package():
    """A folder of tests per part of the package; the suites over every cell stay on top."""
    parts = {part_of(p) for p in PACKAGE.rglob("*.py")}
    folders = {p.name for p in Path(__file__).parent.iterdir() if p.is_dir()}
    folders -= {"fixtures", "__pycache__"}
    assert folders and folders <= parts, sorted(folders - parts)


def test_the_test_registry_covers_every_registered_cell():
    """Each factory of ``gatedcells.cells.CELLS`` runs in the registry suites under its own
    name (``tests/registry.py`` adds flags and the code paths it does not reach)."""
    import registry

    from gatedcells import cells

    assert set(cells.CELLS) <= set(registry.CELLS), sorted(set(cells.CELLS) - set(registry.CELLS))
    for name in cells.CELLS:
        assert registry.build(name).name.startswith(cells.make(name, 4).name.split("(")[0])


def public_factories():
    """``(module, function)`` of every public function of ``cells/`` that returns a ``Cell``."""
    for path in sorted((PACKAGE / "cells").glob("_*.py")):
        for node in ast.parse(path.read_text()).body:
            returns = getattr(node, "returns", None)
            if (
                isinstance(node, ast.FunctionDef)
                and not node.name.startswith("_")
                and isinstance(returns, ast.Name | ast.Constant)
                and getattr(returns, "id", getattr(returns, "value", None)) == "Cell"
            ):
                yield path, node


def lines_of_code(node: ast.FunctionDef) -> int:
    """Lines of a function's body, its docstring aside."""
    body = node.body
    has_doc = isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
    start = body[1].lineno if has_doc and len(body) > 1 else body[0].lineno
    return node.end_lineno - start + 1


def test_cell_factories_check_build_the_spec_and_assemble():
    """DESIGN section 6: a public factory in ``cells/`` checks its flags, builds its spec and
    assembles the cell; its equations and plumbing are module-level (no nested function, so
    no equation in a closure), in about 35 lines of code."""
    found, nested, long = [], [], {}
    for path, node in public_factories():
        where = f"{path.relative_to(PACKAGE)}:{node.name}"
        found.append(node.name)
        inner = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
        nested += [where for n in ast.walk(node) if n is not node and isinstance(n, inner)]
        if (n := lines_of_code(node)) > 35:
            long[where] = n
    assert {"lstm", "gru", "lru", "selective_ssm", "rg_lru", "conv_gru"} <= set(found), found
    assert not nested, nested
    assert not long, long
