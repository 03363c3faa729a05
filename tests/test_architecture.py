"""The module graph: no import cycle among the project's modules, ``transforms`` never
imports ``pipeline``, and the bottom modules import no project module but each other.

Imports are read with ``ast``, every ``import`` statement wherever it is (module level,
inside a function, under ``if TYPE_CHECKING``), so a lazy import cannot hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("pipeline", "transforms", "dev", "tests")
# Modules below everything else: the element protocol, the Cassandra session, the parsed
# CQL types, the text renderings of values, the driver's sets in wire order, its lists of
# ints and its UUIDs (both decoders of our own, registered one way).
LEAVES = (
    "transforms.elements",
    "transforms.cassandra_session",
    "transforms.cql_types",
    "transforms.cql_text",
    "transforms.cql_text_columns",
    "transforms.wire_sets",
    "transforms.int_lists",
    "transforms.fast_uuids",
    "transforms.driver_decoders",
)


# The C extensions' modules (``transforms/formats/_lines.c``: ``transforms.formats._lines``):
# they import no project module, so an import of one is no edge of the graph.
EXTENSIONS = frozenset(
    ".".join(path.relative_to(REPO).with_suffix("").parts)
    for package in PACKAGES
    for path in (REPO / package).rglob("*.c")
)


def project_modules(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file, for every .py of the packages under ``root``."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules that ``name`` imports, anywhere in its file."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from pkg import mod`` imports the module pkg.mod; ``from mod import f``, mod.
            targets = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
            targets = targets or [base]
        else:
            continue
        for target in targets:
            if target in EXTENSIONS:
                continue
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    modules = project_modules(root, packages)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_no_import_cycle() -> None:
    assert cycles(import_graph(REPO)) == []


def test_transforms_never_imports_pipeline() -> None:
    graph = import_graph(REPO)
    wrong = {
        (module, target)
        for module, targets in graph.items()
        if module.startswith("transforms")
        for target in targets
        if target.startswith("pipeline")
    }
    assert wrong == set()


def test_the_bottom_modules_import_no_project_module() -> None:
    graph = import_graph(REPO)
    above = {leaf: graph[leaf] - set(LEAVES) for leaf in LEAVES}
    assert above == {leaf: set() for leaf in LEAVES}
    assert graph["transforms.cassandra_session"] & set(LEAVES) == {
        "transforms.wire_sets",
        "transforms.int_lists",
        "transforms.fast_uuids",
    }
    fixes = ("transforms.wire_sets", "transforms.int_lists", "transforms.fast_uuids")
    fixes += ("transforms.driver_decoders",)
    assert {module: graph[module] for module in fixes} == {
        "transforms.wire_sets": set(),
        "transforms.int_lists": {"transforms.driver_decoders"},
        "transforms.fast_uuids": {"transforms.driver_decoders"},
        "transforms.driver_decoders": set(),
    }


def test_the_checker_finds_a_cycle_hidden_in_a_function(tmp_path: Path) -> None:
    """The checks above can fail: a cycle closed by a function-level import, and one by
    ``from package import module``, are both found."""
    pkg = tmp_path / "transforms"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from transforms.b import f\n")
    (pkg / "b.py").write_text("def f():\n    from transforms import a\n    return a\n")
    (pkg / "c.py").write_text("import pipeline.job\n")
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "__init__.py").write_text("")
    (tmp_path / "pipeline" / "job.py").write_text("from . import other\n")
    (tmp_path / "pipeline" / "other.py").write_text("from .job import x\n")
    graph = import_graph(tmp_path, ("transforms", "pipeline"))
    assert graph == {
        "transforms": set(),
        "transforms.a": {"transforms.b"},
        "transforms.b": {"transforms.a"},
        "transforms.c": {"pipeline.job"},
        "pipeline": set(),
        "pipeline.job": {"pipeline.other"},
        "pipeline.other": {"pipeline.job"},
    }
    assert cycles(graph) == [["pipeline.job", "pipeline.other"], ["transforms.a", "transforms.b"]]


def public_interface_problems(root: Path) -> list[str]:
    """What breaks the rule that each ``transforms`` module's ``__all__`` is its interface.

    Every module (package ``__init__`` files with code included) declares ``__all__``; it
    names only public names the module defines or imports; and every name that another
    module of ``pipeline``, ``transforms`` or ``dev`` imports from it is listed there (tests
    may reach private names)."""
    modules = project_modules(root, ("transforms",))
    exported: dict[str, set[str]] = {}
    problems = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        if not tree.body and path.name == "__init__.py":
            continue  # an empty package marker
        bound = {
            target.id
            for node in tree.body
            if isinstance(node, ast.Assign | ast.AnnAssign)
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(target, ast.Name)
        }
        bound |= {
            node.name
            for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        }
        bound |= {
            (alias.asname or alias.name).split(".")[0]
            for node in tree.body
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in node.names
        }
        declared = [
            node.value
            for node in tree.body
            if isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
        ]
        if not declared:
            problems.append(f"{name}: no __all__")
            continue
        exported[name] = set(ast.literal_eval(declared[0]))
        problems += [f"{name}: __all__ names private {n}" for n in exported[name] if n[0] == "_"]
        problems += [f"{name}: __all__ names undefined {n}" for n in exported[name] - bound]
    for package in ("pipeline", "transforms", "dev"):
        for user, path in project_modules(root, (package,)).items():
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(node, ast.ImportFrom) or node.module not in exported:
                    continue
                for alias in node.names:
                    if alias.name not in exported[node.module] and (
                        f"{node.module}.{alias.name}" not in modules
                    ):
                        problems.append(
                            f"{user} imports {node.module}.{alias.name}, not in __all__"
                        )
    return sorted(problems)


def test_every_transforms_module_declares_its_public_names() -> None:
    assert public_interface_problems(REPO) == []


def test_the_interface_check_finds_what_it_must(tmp_path: Path) -> None:
    pkg = tmp_path / "transforms"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text(
        '__all__ = ["f", "_g", "h"]\n\ndef f(): ...\n\ndef _g(): ...\nk = 1\n'
    )
    (pkg / "b.py").write_text("from transforms.a import f, k\n")
    assert public_interface_problems(tmp_path) == [
        "transforms.a: __all__ names private _g",
        "transforms.a: __all__ names undefined h",
        "transforms.b imports transforms.a.k, not in __all__",
        "transforms.b: no __all__",
    ]


# --- size: no module over MAX_MODULE_LINES, no function over MAX_FUNCTION_LINES -----------

MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60
# Modules being split on other branches while this check landed; each entry must still
# break a limit (a module that no longer does is reported), so the list empties at merge.
SIZE_EXEMPT: tuple[str, ...] = ()


def size_problems(
    root: Path,
    exempt: tuple[str, ...] = SIZE_EXEMPT,
    packages: tuple[str, ...] = ("pipeline", "transforms"),
) -> list[str]:
    """Every module of ``packages`` over ``MAX_MODULE_LINES`` lines and every function or
    method (nested ones included) over ``MAX_FUNCTION_LINES``, except in ``exempt``
    modules; and every exempt module that breaks neither limit any more."""
    problems = []
    for name, path in project_modules(root, packages).items():
        text = path.read_text()
        found = []
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            found.append(f"{name}: {lines} lines")
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{name}.{node.name} (line {node.lineno}): {length} lines")
        if name not in exempt:
            problems += found
        elif not found:
            problems.append(f"{name}: within the limits, remove it from SIZE_EXEMPT")
    return sorted(problems)


def test_no_module_or_function_is_too_long() -> None:
    assert size_problems(REPO) == []


def test_the_size_check_finds_what_it_must(tmp_path: Path) -> None:
    pkg = tmp_path / "transforms"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES - 1))
    (pkg / "fits.py").write_text(f"def f():\n{body}")  # exactly MAX_FUNCTION_LINES
    method_body = body.replace("    ", "        ") + "        y = 1\n"  # one line too many
    (pkg / "long_function.py").write_text(f"class C:\n    def g(self):\n{method_body}")
    (pkg / "long_module.py").write_text("x = 1\n" * (MAX_MODULE_LINES + 1))
    (pkg / "exempt_long.py").write_text("x = 1\n" * (MAX_MODULE_LINES + 1))
    (pkg / "exempt_fits.py").write_text("x = 1\n")
    exempt = ("transforms.exempt_long", "transforms.exempt_fits")
    assert size_problems(tmp_path, exempt, ("transforms",)) == [
        "transforms.exempt_fits: within the limits, remove it from SIZE_EXEMPT",
        "transforms.long_function.g (line 2): 61 lines",
        "transforms.long_module: 501 lines",
    ]
