"""The package's shape, checked from its source (AST, nothing imported): small modules, no import
circles, no module reaching into another's private names, no streamlit inside the package."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mrivision"
MAX_LINES = 400


def modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package (packages by their __init__)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = modules()


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def imports(name: str) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for each import in module `name`, lazy ones included."""
    tree = ast.parse(MODULES[name].read_text(), str(MODULES[name]))
    base = name.split(".") if is_package(name) else name.split(".")[:-1]
    found = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend((alias.name, [], child.lineno) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                module = child.module or ""
                if child.level:
                    module = ".".join(base[:len(base) - child.level + 1] + ([module] if module else []))
                found.append((module, [alias.name for alias in child.names], child.lineno))
            visit(child)

    visit(tree)
    return found


def edges(name: str) -> set[str]:
    """The package's modules that `name` imports anywhere (module level, TYPE_CHECKING blocks and
    lazy imports in functions alike): `from a import b` counts as module a.b when b is one, else a."""
    out = set()
    for module, names, _ in imports(name):
        if module not in MODULES:
            continue
        submodules = [f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES]
        out.update(submodules or [module])
        if len(submodules) < len(names):
            out.add(module)
    out.discard(name)
    return out


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of `graph` (a list of modules, first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := dfs(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := dfs(start)):
            return cycle
    return None


def test_the_checks_see_what_they_should():
    assert {"mrivision", "mrivision.inference.predictor", "mrivision.inference.scan"} <= set(MODULES)
    assert "mrivision.inference.prediction" in edges("mrivision.inference.scan")
    assert "mrivision.inference.predictor" not in edges("mrivision.inference.scan")
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_over_the_line_limit(name):
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[name]} has {lines} lines (> {MAX_LINES}): split it by job"


def test_no_import_circle():
    cycle = find_cycle({name: edges(name) for name in MODULES})
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])



def layer(name: str) -> str:
    """The subpackage a module belongs to (`mrivision.inference.scan` -> `inference`), or the top-level module."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_no_import_circle_between_subpackages():
    graph: dict[str, set[str]] = {}
    for name in MODULES:
        graph.setdefault(layer(name), set()).update(layer(m) for m in edges(name) if layer(m) != layer(name))
    for node in {m for targets in graph.values() for m in targets}:
        graph.setdefault(node, set())
    graph.pop("mrivision", None)  # the package's own __init__ re-exports public names from every layer
    graph = {k: v - {"mrivision"} for k, v in graph.items()}
    cycle = find_cycle(graph)
    assert cycle is None, "subpackages import each other: " + " -> ".join(cycle or [])

def test_no_module_imports_another_modules_private_names():
    offences = []
    for name in MODULES:
        for module, names, line in imports(name):
            if module.split(".")[0] != "mrivision" or module == name:
                continue
            private = [n for n in names if n.startswith("_") and f"{module}.{n}" not in MODULES]
            offences += [f"{MODULES[name].relative_to(PACKAGE.parent)}:{line} takes {module}.{n}" for n in private]
    assert not offences, "\n".join(offences)


def module_aliases(name: str) -> dict[str, str]:
    """Local names that module `name` binds to another module of the package (`from a import mod`,
    `import a.mod as m`)."""
    out = {}
    base = name.split(".") if is_package(name) else name.split(".")[:-1]
    for node in ast.walk(ast.parse(MODULES[name].read_text(), str(MODULES[name]))):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                module = ".".join(base[:len(base) - node.level + 1] + ([module] if module else []))
            out.update({a.asname or a.name: f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in MODULES})
        elif isinstance(node, ast.Import):
            out.update({a.asname: a.name for a in node.names if a.asname and a.name in MODULES})
    return {local: module for local, module in out.items() if module != name}


def test_no_module_reaches_into_another_modules_private_attributes():
    """`from mrivision.x import mod` then `mod._helper` is the same reach as importing `_helper`."""
    offences = []
    for name in MODULES:
        aliases = module_aliases(name)
        for node in ast.walk(ast.parse(MODULES[name].read_text(), str(MODULES[name]))):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                offences.append(f"{MODULES[name].relative_to(PACKAGE.parent)}:{node.lineno} takes "
                                f"{aliases[node.value.id]}.{node.attr}")
    assert not offences, "\n".join(offences)


def test_the_package_never_imports_streamlit():
    offences = [f"{MODULES[name].relative_to(PACKAGE.parent)}:{line}"
                for name in MODULES for module, _, line in imports(name)
                if module.split(".")[0] == "streamlit"]
    assert not offences, "streamlit imported inside mrivision/: " + ", ".join(offences)


def test_the_wheel_lists_every_subpackage():
    import tomllib

    setuptools = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    missing = sorted(name for name in MODULES if is_package(name) and name not in listed)
    assert not missing, f"pyproject.toml [tool.setuptools] packages lacks {missing}: the wheel would not carry them"
    for shipped, folder in setuptools["package-dir"].items():
        assert shipped in listed and (PACKAGE.parent / folder).is_dir(), (shipped, folder)
