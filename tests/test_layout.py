"""The shape of the code: imports run one way between the packages, there is no import cycle, and the pure
modules import no Django (docs/architecture.md).

Read from the source with `ast`, nothing is imported: a lazy import inside a function counts like any other,
so a dependency cannot hide from this test by moving into a function body.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Each package may import the packages at its own position or before it, never one after it.
LAYERS = ("config", "apikit", "plotkit", "runs", "mlflow_compat", "fits", "planner", "ops", "workers")
RANK = {name: i for i, name in enumerate(LAYERS)}

# The pure maths and plotting: NumPy, SciPy and matplotlib only; tested and typed strictly without Django.
PURE_MODULES = (
    "plotkit",
    "runs.plots",
    "runs.density",
    "runs.plausibility",
    "runs.schedules",
    "fits.laws",
    "fits.ranking",
    "fits.density",
    "fits.json_numbers",
    "fits.plots",
    "planner.allocation",
    "planner.suggestions",
    "planner.plots",
)
FRAMEWORKS = ("django", "rest_framework", "django_filters", "drf_spectacular", "celery", "kombu")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _project_files() -> Iterator[Path]:
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def _imports(path: Path, *, top_level_only: bool = False) -> Iterator[tuple[int, str]]:
    """(line, imported module) of every import in the file; relative imports resolved against its package."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module_name(path)
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield node.lineno, base
            for alias in node.names:  # `from fits import plots` imports the module fits.plots
                yield node.lineno, f"{base}.{alias.name}"


def _known(modules: set[str], name: str) -> str | None:
    """The project module that `name` refers to (itself or its closest parent), or None for a library."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


MODULES = {_module_name(path): path for path in _project_files()}


def test_the_layout_test_sees_every_package():
    assert {name.split(".")[0] for name in MODULES} == set(LAYERS)


def test_imports_run_one_way_between_packages():
    wrong = []
    for name, path in MODULES.items():
        own = RANK[name.split(".")[0]]
        for line, imported in _imports(path):
            top = imported.split(".")[0]
            if top in RANK and RANK[top] > own:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {imported} (a later package)")
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_the_tasks_but_the_workers():
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for name, path in MODULES.items()
        if not name.startswith("workers")
        for line, imported in _imports(path)
        if imported.split(".")[0] == "workers"
    ]
    assert not offenders


def test_there_is_no_import_cycle_between_modules():
    # Every import counts, those inside functions too: a cycle deferred into a function body is still two modules
    # that need each other.
    graph = {
        name: {dep for _, imported in _imports(path) if (dep := _known(set(MODULES), imported))} - {name}
        for name, path in MODULES.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in graph[node]:
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)

    # A package's __init__ re-exporting its own modules is not a cycle of behaviour (each of those modules imports
    # a sibling, which runs the __init__); a cycle without a package's __init__ in it is.
    def reexport(cycle: list[str]) -> bool:
        packages = [m for m in cycle if any(other.startswith(m + ".") for other in cycle)]
        return bool(packages) and all(m in packages or m.startswith(tuple(p + "." for p in packages)) for m in cycle)

    real = [c for c in cycles if not reexport(c)]
    assert not real, f"import cycles: {real}"


@pytest.mark.parametrize("pure", PURE_MODULES)
def test_pure_modules_import_no_framework(pure):
    files = [path for name, path in MODULES.items() if name == pure or name.startswith(pure + ".")]
    assert files, f"{pure} not found"
    seen = []
    for path in files:
        for line, imported in _imports(path):
            top = imported.split(".")[0]
            if top in FRAMEWORKS:
                seen.append(f"{path.relative_to(ROOT)}:{line} imports {imported}")
            project = _known(set(MODULES), imported)
            if project is not None and not any(project == p or project.startswith(p + ".") for p in PURE_MODULES):
                seen.append(f"{path.relative_to(ROOT)}:{line} imports {project}, which is not pure")
    assert not seen, "\n".join(seen)


# ORM writes: these names are writes on any receiver; create, update and delete only on a manager or queryset.
WRITES = frozenset({"save", "bulk_create", "bulk_update", "get_or_create", "update_or_create"})
QUERYSET_WRITES = frozenset({"create", "update", "delete"})


def test_selectors_never_write():
    """Reads live in selectors, writes in services (docs/style.md): a selector imports no service and calls no
    ORM write."""
    wrong = []
    for name, path in MODULES.items():
        if not name.endswith("selectors"):
            continue
        for line, imported in _imports(path):
            if imported.split(".")[-1] == "services" or ".services." in imported:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {imported}")
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            receiver = ast.unparse(node.func.value)
            on_queryset = "objects" in receiver or any(f".{m}(" in receiver for m in ("filter", "exclude", "all"))
            if node.func.attr in WRITES or (node.func.attr in QUERYSET_WRITES and on_queryset):
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} calls .{node.func.attr}()")
    assert not wrong, "\n".join(wrong)
