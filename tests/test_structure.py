"""Measures of the three connector packages (issue 15) and the sandbox (issue 16): no module
over 600 lines, no runtime import cycle among a package's modules (function-level imports
count; imports under `if TYPE_CHECKING:` do not), no code generation."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 600
PACKAGES = [
    pytest.param("marketo-common/marketo_common", id="marketo_common"),
    pytest.param("tap-marketo-members/tap_marketo_members", id="tap_marketo_members"),
    pytest.param("target-marketo-ingest/target_marketo_ingest", id="target_marketo_ingest"),
]
# The sandbox keeps the size and import rules too (issue 16), not the shared type table: it reads
# Marketo's field types on its own on purpose, so it cannot agree with the connectors' bugs.
WITH_SANDBOX = [*PACKAGES, pytest.param("marketo-sandbox/marketo_sandbox", id="marketo_sandbox")]


def modules(folder: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package in `folder`."""
    out = {}
    for path in sorted(folder.rglob("*.py")):
        parts = list(path.relative_to(folder.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _runtime_nodes(tree: ast.AST):
    """Every node except those under `if TYPE_CHECKING:`."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def runtime_imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that `name` imports when it runs."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for dotted in targets:
            # `import a.b.c` runs a, a.b and a.b.c: the deepest known module is the edge.
            target = dotted
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                group.append(item)
                if item == node:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return out


@pytest.mark.parametrize("folder", WITH_SANDBOX)
def test_no_module_over_600_lines(folder):
    long = {
        str(path.relative_to(ROOT)): n
        for path in modules(ROOT / folder).values()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


@pytest.mark.parametrize("folder", WITH_SANDBOX)
def test_no_runtime_import_cycle(folder):
    found = modules(ROOT / folder)
    graph = {name: runtime_imports(name, path, set(found)) for name, path in found.items()}
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_function_level_cycle(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import x\n")
    (pkg / "b.py").write_text("def x():\n    from pkg import a\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n"
    )
    found = modules(pkg)
    graph = {name: runtime_imports(name, path, set(found)) for name, path in found.items()}
    assert cycles(graph) == [["pkg.a", "pkg.b"]]


def _calls(folder: str, names: set[str]) -> list[str]:
    """`file:line name` for each call of a builtin in `names` in the package."""
    out = []
    for path in modules(ROOT / folder).values():
        out.extend(
            f"{path.relative_to(ROOT)}:{node.lineno} {node.func.id}"
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in names
        )
    return out


@pytest.mark.parametrize("folder", [p.values[0] for p in PACKAGES])
def test_no_code_generation(folder):
    """Row converters are plain functions: code built at run time cannot be read or stepped."""
    assert _calls(folder, {"exec", "eval", "compile"}) == []


def test_marketo_data_types_are_mapped_in_one_module():
    """The dataType names appear as a mapping only in marketo_common.fields."""
    data_types = {"percent", "currency", "reference", "datetime", "boolean", "integer"}
    mapped = set()
    for folder in (p.values[0] for p in PACKAGES):
        for path in modules(ROOT / folder).values():
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Dict):
                    keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
                    if len(keys & data_types) >= 3:
                        mapped.add(str(path.relative_to(ROOT)))
    assert mapped == {"marketo-common/marketo_common/fields.py"}
