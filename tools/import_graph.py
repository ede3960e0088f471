"""Imports between vsearch's own modules, and the circles they make.

``python tools/import_graph.py`` lists every cycle among vsearch modules, counting both
module-level imports and the function-local ones (an import moved into a function to dodge a
circle still ties the two modules together; it only hides the tie from Python). It also lists
package-level cycles (``vsearch.eval`` -> ``vsearch.train`` -> ``vsearch.eval``), the shape the
layering rule forbids even when no two files import each other.

Imports under ``if TYPE_CHECKING:`` are left out: they never run, and they are the sanctioned
way to name a type from a module above. ``--edges`` prints every edge, marked ``local`` when
the import sits inside a function. Exit status 1 when a cycle is found, so CI can run it.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "vsearch"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(current: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute module a relative ``from . import x`` names."""
    if not level:
        return target or ""
    base = current.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def imports_of(path: Path, modules: set[str]) -> list[tuple[str, bool]]:
    """(imported vsearch module, local?) for each import statement in ``path``."""
    current = module_name(path)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[str, bool]] = []

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub, local)
                continue
            inner = local or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if (hit := known(alias.name)) and alias.name.startswith(PACKAGE):
                        found.append((hit, local))
            elif isinstance(child, ast.ImportFrom):
                base = _resolve(current, is_package, child.level, child.module)
                if not base.startswith(PACKAGE):
                    continue
                for alias in child.names:  # `from . import query_path` names a module
                    hit = known(f"{base}.{alias.name}") or known(base)
                    if hit:
                        found.append((hit, local))
            visit(child, inner)

    visit(tree, False)
    return [(m, loc) for m, loc in found if m != current]


def graph() -> dict[str, dict[str, bool]]:
    """module -> {imported module: True when every import of it is function-local}."""
    files = {module_name(p): p for p in (ROOT / PACKAGE).rglob("*.py")}
    modules = set(files)
    edges: dict[str, dict[str, bool]] = {m: {} for m in modules}
    for mod, path in files.items():
        for target, local in imports_of(path, modules):
            edges[mod][target] = edges[mod].get(target, True) and local
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10000)

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    return sorted(out)


def package_of(module: str) -> str:
    """``vsearch.train.loop`` -> ``vsearch.train``; top-level modules stand for themselves.
    A package's ``__init__`` belongs to the package."""
    parts = module.split(".")
    return ".".join(parts[:2])


def is_subpackage(name: str) -> bool:
    return (ROOT / Path(*name.split("."))).is_dir()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", action="store_true", help="print every edge between vsearch modules")
    args = parser.parse_args(argv)
    g = graph()
    if args.edges:
        for mod in sorted(g):
            for target, local in sorted(g[mod].items()):
                print(f"{mod} -> {target}{'  (local)' if local else ''}")
    found = 0
    module_cycles = cycles({m: set(t) for m, t in g.items()})
    print(f"module cycles: {len(module_cycles)}")
    for comp in module_cycles:
        members = set(comp)
        ties = [f"{a} -> {b}{' (local)' if g[a][b] else ''}" for a in comp for b in sorted(g[a]) if b in members]
        print("  " + " <-> ".join(comp))
        for tie in ties:
            print("      " + tie)
        found += 1
    packages: dict[str, set[str]] = {}
    for mod, targets in g.items():
        src = package_of(mod)
        for t in targets:
            dst = package_of(t)
            if dst != src and dst != PACKAGE:
                packages.setdefault(src, set()).add(dst)
    # Cycles among top-level modules alone are module cycles, listed above.
    package_cycles = [c for c in cycles(packages) if any(is_subpackage(m) for m in c)]
    print(f"package cycles: {len(package_cycles)}")
    for comp in package_cycles:
        members = set(comp)
        print("  " + " <-> ".join(comp))
        for a in comp:
            for mod, targets in sorted(g.items()):
                if package_of(mod) != a:
                    continue
                for t in sorted(targets):
                    if package_of(t) in members and package_of(t) != a:
                        print(f"      {mod} -> {t}{' (local)' if targets[t] else ''}")
        found += 1
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
