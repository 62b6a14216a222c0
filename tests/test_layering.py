"""The package's shape: stages import one way (docs/architecture.md), no cycles, no shims."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "interp_steer"
BASE = ("types", "storage", "constants", "progress")


def order_from_docs() -> dict[str, set[str]]:
    """The stage table of docs/architecture.md: stage -> the stages it may import."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    rows = re.findall(r"^\| (\w+) \|([^|\n]*)\|$", text, flags=re.M)
    order = {stage: {s.strip() for s in allowed.split(",") if s.strip()} for stage, allowed in rows}
    order.pop("stage")  # the header row
    return order


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def stage_of(module: str) -> str:
    """``interp_steer.analysis.sweep`` -> ``analysis``; base modules -> ``base``."""
    parts = module.split(".")
    if parts[0] == "repro":
        return "repro"
    if len(parts) == 1:
        return "package"
    return "base" if parts[1] in BASE else parts[1]


def imports(path: Path) -> list[tuple[int, str, list[str], bool]]:
    """Every import of the package in ``path``: (line, module, names, inside a function)."""
    tree = ast.parse(path.read_text())
    local: set[int] = set()
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            local |= {id(n) for n in ast.walk(fn) if isinstance(n, ast.Import | ast.ImportFrom)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [a.name for a in node.names]
            found.append((node.lineno, node.module, names, id(node) in local))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                found.append((node.lineno, alias.name, [], id(node) in local))
    return [f for f in found if f[1].split(".")[0] in ("interp_steer", "repro", "tests")]


def modules(folder: Path) -> dict[str, Path]:
    return {module_name(p): p for p in sorted(folder.rglob("*.py"))}


LIBRARY = modules(PACKAGE)
REPRO = modules(ROOT / "repro")


def resolve(module: str, names: list[str]) -> list[str]:
    """The modules an import loads: ``from pkg import sub`` names a submodule."""
    subs = [f"{module}.{n}" for n in names if f"{module}.{n}" in LIBRARY | REPRO]
    return [module, *subs]


def test_the_order_table_names_every_stage():
    order = order_from_docs()
    stages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert set(order) == stages | {"base"}
    for allowed in order.values():
        assert allowed <= set(order)


def test_top_level_holds_only_the_face_and_the_base_modules():
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top == {"__init__", *BASE}


def test_every_import_follows_the_stage_order():
    order = order_from_docs()
    wrong = []
    for name, path in LIBRARY.items():
        here = stage_of(name)
        if here == "package":
            continue  # the lazy face exports from every stage
        for line, module, names, _ in imports(path):
            if module.split(".")[0] != "interp_steer":
                wrong.append(f"{path.name}:{line} imports {module} (library imports only itself)")
                continue
            for target in resolve(module, names):
                there = stage_of(target)
                if there == "package":
                    wrong.append(f"{name}:{line} imports the top-level face")
                elif there != here and there not in order[here]:
                    wrong.append(f"{name}:{line} ({here}) imports {target} ({there})")
    assert not wrong, "\n".join(wrong)


def graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, path in mods.items():
        edges[name] = set()
        for _, module, names, _ in imports(path):
            edges[name] |= {t for t in resolve(module, names) if t in mods and t != name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def without_faces(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """Module-to-module edges, with an import of a face replaced by its exporting modules."""
    faces = {m for m in edges if (LIBRARY | REPRO)[m].name == "__init__.py"}
    out: dict[str, set[str]] = {}
    for v in edges:
        if v in faces:
            continue
        targets: set[str] = set()
        todo = list(edges[v])
        while todo:
            t = todo.pop()
            if t in faces:
                todo.extend(u for u in edges[t] if u not in targets)
            elif t != v:
                targets.add(t)
        out[v] = targets
    return out


def test_no_import_cycles():
    edges = without_faces(graph(LIBRARY | REPRO))
    assert cycles(edges) == []


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_private_name_is_imported_from_another_module():
    wrong = [
        f"{name}:{line} imports {n} from {module}"
        for name, path in (LIBRARY | REPRO).items()
        for line, module, names, _ in imports(path)
        for n in names
        if n.startswith("_")
    ]
    assert not wrong, "\n".join(wrong)


def test_imports_inside_functions_say_why():
    """Only the command line defers package imports (so --help never waits for torch)."""
    wrong = []
    for name, path in LIBRARY.items():
        lines = path.read_text().splitlines()
        for line, module, _, inside in imports(path):
            if inside and not (stage_of(name) == "cli" and "--help" in lines[line - 2]):
                wrong.append(f"{name}:{line} imports {module} inside a function")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("name", sorted(REPRO))
def test_repro_imports_only_public_faces(name):
    faces = {"interp_steer"} | {m for m in LIBRARY if LIBRARY[m].name == "__init__.py"}
    faces |= {f"interp_steer.{b}" for b in BASE}
    for line, module, _, _ in imports(REPRO[name]):
        if module.startswith("interp_steer"):
            assert module in faces, f"{name}:{line} imports {module}, not a public face"


def test_stage_faces_have_a_docstring_and_all():
    for name, path in LIBRARY.items():
        if path.name != "__init__.py" or name == "interp_steer":
            continue
        tree = ast.parse(path.read_text())
        doc = ast.get_docstring(tree)
        assert doc and "\n" not in doc.strip(), f"{name}: a one-line docstring"
        exported = [
            node
            for node in tree.body
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "__all__"
        ]
        assert exported, f"{name} has no __all__"


def test_no_module_shares_a_name_with_what_its_face_exports():
    import importlib

    for name, path in LIBRARY.items():
        if path.name != "__init__.py":
            continue
        face = importlib.import_module(name)
        submodules = {p.stem for p in path.parent.glob("*.py")} | {
            p.name for p in path.parent.iterdir() if (p / "__init__.py").is_file()
        }
        assert not submodules & set(face.__all__), name
