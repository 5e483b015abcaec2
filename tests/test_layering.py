"""The library reads by its stages, bottom to top, and nothing runs back up (imports inside functions
included): a new import circle, or a stage reaching into a later one, fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mipo_local

PACKAGE = Path(mipo_local.__file__).resolve().parent

# modules every stage may use; they use only each other
GROUND = ("errors", "progress", "stop", "workspace", "options", "addresses", "settings")
# bottom to top: each layer may import its own modules and those of the layers below it
LAYERS = ("ground", "inference", "modelio", "context", "pairs", "train", "evaluation", "chat", "pipeline", "cli",
          "entry")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    """The layer of a `mipo_local` module: its package below `mipo_local`, or ground for the loose ones."""
    parts = module.split(".")
    if len(parts) == 1:
        return "ground"          # the package itself: its version
    if parts[1] == "__main__":
        return "entry"           # `python -m mipo_local`
    if parts[1] in GROUND:
        return "ground"
    if parts[1] == "demo":
        return "ground"          # data only
    return parts[1]


def imports(path: Path) -> set[str]:
    """The `mipo_local` modules that the module at `path` imports anywhere (a name imported from a
    package counts as that package's submodule when there is one)."""
    name, found = module_name(path), set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != "mipo_local":
                continue
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                found.add(sub if sub in MODULES else module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "mipo_local")
    found.discard(name)
    return found


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py") if "accelerate" not in p.parts}


def test_every_module_has_a_layer():
    unknown = {m for m in MODULES if layer_of(m) not in LAYERS}
    assert not unknown, f"place these in a stage's package or the ground floor: {sorted(unknown)}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_import_runs_back_up(name):
    rank = LAYERS.index(layer_of(name))
    above = {m for m in imports(MODULES[name]) if LAYERS.index(layer_of(m)) > rank}
    assert not above, f"{name} ({layer_of(name)}) imports from a later layer: {sorted(above)}"


def test_no_import_circles():
    graph = {m: {i for i in imports(p) if i in MODULES} for m, p in MODULES.items()}
    # Tarjan's strongly connected components, iteratively
    index, low, stack, on_stack, circles, counter = {}, {}, [], set(), [], [0]

    def visit(root):
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        circles.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = counter[0]
                counter[0] += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])

    for module in sorted(graph):
        if module not in index:
            visit(module)
    assert not circles, f"import circles: {circles}"


def test_the_ground_floor_has_its_modules():
    loose = {m.split(".")[1] for m in MODULES if m.count(".") == 1 and not MODULES[m].name == "__init__.py"}
    assert loose - {"__main__"} == set(GROUND), "a loose module is on the ground floor, or in a stage's package"


def test_sql_stays_in_the_store():
    """Only the store package talks to SQLite."""
    outside = set()
    for name, path in MODULES.items():
        if name.startswith("mipo_local.context.store"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import) and any(a.name == "sqlite3" for a in node.names) or \
                    isinstance(node, ast.ImportFrom) and node.module == "sqlite3":
                outside.add(name)
    assert not outside, f"SQL outside the store: {sorted(outside)}"


MAX_FUNCTION_LINES, MAX_MODULE_LINES = 100, 500


def test_functions_and_modules_stay_short():
    """A function reads as the named steps it performs; a module has one job."""
    long = []
    for name, path in MODULES.items():
        source = path.read_text()
        if len(source.splitlines()) > MAX_MODULE_LINES:
            long.append(f"{name}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name}: {lines} lines")
    assert not long, "cut these into the steps they perform: " + "; ".join(sorted(long))
