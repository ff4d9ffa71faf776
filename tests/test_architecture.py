"""The shape of the package, checked statically (ast, no imports of our own code): no import
cycles among manyminds' modules, no module over MAX_LINES lines, and `import manyminds` (and the
CLI's entry module) staying free of heavy or network libraries.

Import edges: one edge A → B for each import statement in A that names B, where B is the module
named (`import manyminds.a.b`, `from .a import b` when `a/b.py` exists) or else the module the
names are taken from (`from .a import name` → `a`, a package's `__init__`). Imports inside
functions count — a lazy import still closes a cycle at run time, only later — but imports under
`if TYPE_CHECKING:` do not. The parent packages whose `__init__` runs first are not edges: the
root `manyminds/__init__.py` imports lazily on attribute access, and counting it would make
every module part of one cycle. `importlib.import_module(...)` calls are not followed.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "manyminds"
MAX_LINES = 650
MAX_CYCLES_PER_COMPONENT = 50  # elementary cycles listed per strongly connected component
HEAVY = ("httpx", "openai", "fastapi", "sqlite_utils", "numpy", "ray")


# --- the import graph ------------------------------------------------------------------------


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    path: str  # of the importing file, relative to src/
    line: int


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def module_files(root: Path = SRC, package: str = PACKAGE) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement under `node`, at any depth, except the body of `if TYPE_CHECKING:`
    (its `else:` still runs, so it is searched)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.orelse:
                if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                    yield stmt
                else:
                    yield from _imports(stmt)
        else:
            yield from _imports(child)


def _resolve_base(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute module a `from` import starts at: `from ..a import b` in `pkg.sub.mod` → `pkg.a`."""
    if level == 0:
        return name or ""
    parts = module.split(".")
    package = parts if is_package else parts[:-1]
    if level - 1 > len(package):
        raise ValueError(f"relative import beyond the top package in {module}")
    base = package[: len(package) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _known(target: str, modules: set[str]) -> str | None:
    """`target` or its longest prefix that is one of our modules (`import a.b.c` of a function-less
    path still names the module `a.b`)."""
    parts = target.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def import_edges(files: dict[str, Path], root: Path = SRC) -> list[Edge]:
    """Every import edge between the modules in `files` (see the module docstring)."""
    modules = set(files)
    edges: list[Edge] = []
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        rel = str(path.relative_to(root))
        for node in _imports(tree):
            targets: list[str | None] = []
            if isinstance(node, ast.Import):
                targets = [_known(alias.name, modules) for alias in node.names]
            else:
                base = _resolve_base(module, is_package, node.level, node.module)
                for alias in node.names:
                    sub = f"{base}.{alias.name}" if base else alias.name
                    targets.append(sub if sub in modules else _known(base, modules))
            for target in dict.fromkeys(targets):
                if target is not None and target != module:
                    edges.append(Edge(module, target, rel, node.lineno))
    return edges


# --- cycles --------------------------------------------------------------------------------


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative: no recursion limit), each sorted,
    in a stable order. Nodes only named as targets count as nodes."""
    nodes = sorted(set(graph) | {t for targets in graph.values() for t in targets})
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for start in nodes:
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return sorted(components)


def elementary_cycles(graph: dict[str, set[str]], component: list[str], limit: int) -> list[list[str]]:
    """The elementary cycles inside one strongly connected component, each starting at its
    smallest node (so each is listed once), at most `limit` of them."""
    cycles: list[list[str]] = []

    def walk(path: list[str], allowed: set[str]) -> None:
        for child in sorted(graph.get(path[-1], ())):
            if len(cycles) >= limit:
                return
            if child == path[0]:
                cycles.append(path + [child])
            elif child in allowed and child not in path:
                walk(path + [child], allowed)

    for start in component:
        walk([start], {n for n in component if n > start})
    return cycles


def find_cycles(graph: dict[str, set[str]], limit: int = MAX_CYCLES_PER_COMPONENT) -> list[list[str]]:
    """Every elementary cycle of the graph, as node lists that end where they start. A node
    importing itself is not a cycle here (`import_edges` drops such edges)."""
    cycles: list[list[str]] = []
    for component in strongly_connected(graph):
        if len(component) > 1:
            cycles += elementary_cycles(graph, component, limit)
    return cycles


def graph_of(edges: list[Edge]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
    return graph


def describe_cycle(cycle: list[str], edges: list[Edge]) -> str:
    """"a -> b -> a  (a.py:12 imports b; b.py:30 imports a)", with the package prefix dropped."""
    first: dict[tuple[str, str], Edge] = {}
    for e in edges:
        first.setdefault((e.source, e.target), e)
    short = [m.removeprefix(f"{PACKAGE}.") for m in cycle]
    where = [first[(a, b)] for a, b in zip(cycle, cycle[1:], strict=False) if (a, b) in first]
    return " -> ".join(short) + "  (" + "; ".join(f"{e.path}:{e.line}" for e in where) + ")"


# --- the tests -----------------------------------------------------------------------------


def test_cycle_finder_on_a_small_graph():
    graph = {
        "a": {"b"},
        "b": {"c", "d"},
        "c": {"a"},  # a -> b -> c -> a
        "d": {"e"},
        "e": {"d", "f"},  # d <-> e, reached from the first cycle but not part of it
        "f": set(),
        "g": {"a"},  # into a cycle, not on one
        "h": {"i"},
        "i": {"h", "j"},
        "j": {"h"},  # two cycles through h: h -> i -> h and h -> i -> j -> h
    }
    components = [c for c in strongly_connected(graph) if len(c) > 1]
    assert components == [["a", "b", "c"], ["d", "e"], ["h", "i", "j"]]
    assert find_cycles(graph) == [["a", "b", "c", "a"], ["d", "e", "d"], ["h", "i", "h"], ["h", "i", "j", "h"]]
    assert find_cycles({"x": {"y"}, "y": {"z"}, "z": set()}) == []
    assert find_cycles(graph, limit=1) == [["a", "b", "c", "a"], ["d", "e", "d"], ["h", "i", "h"]]


def test_cycle_finder_on_a_long_chain_needs_no_recursion():
    n = 5000
    graph = {f"m{i:05d}": {f"m{i + 1:05d}"} for i in range(n)}
    graph[f"m{n:05d}"] = {"m00000"}
    (component,) = strongly_connected(graph)
    assert len(component) == n + 1


def test_imports_are_resolved_to_modules(tmp_path):
    """Relative and absolute imports, submodules and names, lazy imports and TYPE_CHECKING."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import A\n",
        "a.py": "from . import b\nfrom .sub import helper, VALUE\nimport os\n",
        "b.py": "def f():\n    from .sub.helper import g\n    import pkg.a\n",
        "c.py": "import typing\nif typing.TYPE_CHECKING:\n    from .a import A\nelse:\n    from .b import f\n",
        "sub/__init__.py": "VALUE = 1\n",
        "sub/helper.py": "from ..a import x\nfrom .. import c\nfrom pkg.sub import VALUE\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    edges = import_edges(module_files(tmp_path, "pkg"), tmp_path)
    got = sorted((e.source, e.target) for e in edges)
    assert got == sorted([
        ("pkg.a", "pkg.b"),
        ("pkg.a", "pkg.sub.helper"),  # a submodule named in `from .sub import helper`
        ("pkg.a", "pkg.sub"),  # and a name from the package's __init__ in the same statement
        ("pkg.b", "pkg.sub.helper"),  # lazy, inside a function
        ("pkg.b", "pkg.a"),
        ("pkg.c", "pkg.b"),  # the else of `if TYPE_CHECKING:` runs
        ("pkg.sub.helper", "pkg.a"),
        ("pkg.sub.helper", "pkg.c"),
        ("pkg.sub.helper", "pkg.sub"),
    ])  # fmt: skip
    lines = {(e.source, e.target): e.line for e in edges}
    assert lines[("pkg.b", "pkg.a")] == 3
    # Worked out by hand from the edges above: every elementary cycle once, from its smallest module.
    assert [describe_cycle(c, edges) for c in find_cycles(graph_of(edges))] == [
        "pkg.a -> pkg.b -> pkg.a  (pkg/a.py:1; pkg/b.py:3)",
        "pkg.a -> pkg.b -> pkg.sub.helper -> pkg.a  (pkg/a.py:1; pkg/b.py:2; pkg/sub/helper.py:1)",
        "pkg.a -> pkg.sub.helper -> pkg.a  (pkg/a.py:2; pkg/sub/helper.py:1)",
        "pkg.a -> pkg.sub.helper -> pkg.c -> pkg.b -> pkg.a  (pkg/a.py:2; pkg/sub/helper.py:2; pkg/c.py:5; pkg/b.py:3)",
        "pkg.b -> pkg.sub.helper -> pkg.c -> pkg.b  (pkg/b.py:2; pkg/sub/helper.py:2; pkg/c.py:5)",
    ]


def test_no_import_cycles():
    """Each group of modules that import each other (a strongly connected component), then every
    cycle in it with the file and line of each import; break a cycle at any of them."""
    edges = import_edges(module_files())
    graph = graph_of(edges)
    groups = [c for c in strongly_connected(graph) if len(c) > 1]
    lines: list[str] = []
    total = 0
    for group in groups:
        cycles = elementary_cycles(graph, group, MAX_CYCLES_PER_COMPONENT)
        total += len(cycles)
        more = f" (first {MAX_CYCLES_PER_COMPONENT} shown)" if len(cycles) >= MAX_CYCLES_PER_COMPONENT else ""
        names = ", ".join(m.removeprefix(f"{PACKAGE}.") for m in group)
        lines.append(f"{len(group)} modules, {len(cycles)} cycle(s){more}: {names}")
        lines += [f"  {describe_cycle(c, edges)}" for c in cycles]
    listed = "\n".join(lines)
    assert not groups, f"{total} import cycle(s) in {len(groups)} group(s) of manyminds' modules:\n{listed}"


def test_no_module_is_too_long():
    long = {}
    for path in module_files().values():
        with open(path, encoding="utf-8") as fh:
            count = sum(1 for _ in fh)
        if count > MAX_LINES:
            long[str(path.relative_to(SRC))] = count
    listed = "\n".join(f"{path}: {n} lines" for path, n in sorted(long.items(), key=lambda kv: -kv[1]))
    assert not long, f"{len(long)} module(s) over {MAX_LINES} lines (split them by responsibility):\n{listed}"


@pytest.mark.parametrize("module", ["manyminds", "manyminds.cli"])
def test_importing_stays_light(module):
    """`import manyminds` and the CLI's entry module (what `manyminds --help` loads) pull in
    none of the heavy or network libraries; those load when a command needs them."""
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    loaded = set(out.stdout.split())
    assert module in loaded
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY)
    assert not heavy, f"`import {module}` imports {', '.join(heavy)}"
