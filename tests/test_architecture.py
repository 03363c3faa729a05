"""The module graph: no import cycle among the project's modules, ``transforms`` never
imports ``pipeline``, and the bottom modules import no other project module.

Imports are read with ``ast``, every ``import`` statement wherever it is (module level,
inside a function, under ``if TYPE_CHECKING``), so a lazy import cannot hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("pipeline", "transforms", "dev", "tests")
# Modules below everything else: the element protocol, the Cassandra session, the parsed
# CQL types and the text renderings of values.
LEAVES = (
    "transforms.elements",
    "transforms.cassandra_session",
    "transforms.cql_types",
    "transforms.cql_text",
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
    assert {leaf: graph[leaf] for leaf in LEAVES} == {leaf: set() for leaf in LEAVES}


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
