"""Checks ofahw's import structure and prints what it finds; exit 1 if anything is wrong.

- No import cycle between ofahw's modules, counting imports inside functions too: a lazy import
  hides a cycle from Python at import time, not from the design.
- No private name (``_name``) imported from another top-level package of ofahw (``ofahw.lut`` from
  ``ofahw.search``, say); within one package, private modules behind its public imports are fine.

    python3 scripts/check_imports.py
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ofahw"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def top_package(name: str) -> str:
    parts = name.split(".")
    return ".".join(parts[:2])


def imports(name: str, path: Path, known: set[str]) -> tuple[set[str], list[str]]:
    """The ofahw modules ``name`` imports (anywhere in it), and the private names it takes from
    other top-level packages."""
    edges, private = set(), []
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            edges |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            if not base.startswith("ofahw"):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                target = sub if sub in known else base
                if target in known:
                    edges.add(target)
                if alias.name.startswith("_") and top_package(base) != top_package(name) and not alias.name.startswith("__"):
                    private.append(f"{name} imports {alias.name} from {base}")
                if sub in known and sub.rsplit(".", 1)[1].startswith("_") and top_package(sub) != top_package(name):
                    private.append(f"{name} imports the private module {sub}")
    edges.discard(name)
    return edges, private


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def main() -> int:
    found = modules()
    graph, private = {}, []
    for name, path in found.items():
        graph[name], taken = imports(name, path, set(found))
        private += taken
    loops = cycles(graph)
    # A package's __init__ re-exporting its own modules, which import siblings through the package,
    # is how Python packages work, not a design cycle: only cycles that span two modules outside
    # such a pair are reported.
    loops = [c for c in loops if not _only_package_reexports(c, graph)]
    for loop in loops:
        print("import cycle: " + " -> ".join(loop))
    for line in private:
        print("private name across packages: " + line)
    print(f"{len(found)} modules, {sum(len(e) for e in graph.values())} imports: {len(loops)} cycles, "
          f"{len(private)} private names imported across packages")
    return 1 if loops or private else 0


def _only_package_reexports(component: list[str], graph: dict[str, set[str]]) -> bool:
    """A cycle made only of a package's __init__ and its own modules, closed by the __init__'s re-exports."""
    packages = {top_package(m) for m in component}
    if len(packages) != 1:
        return False
    init = next(iter(packages))
    without_init = {m: {e for e in graph[m] if e != init} for m in component if m != init}
    return not cycles(without_init)


if __name__ == "__main__":
    sys.exit(main())
