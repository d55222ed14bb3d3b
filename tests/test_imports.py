"""The package stays layered and readable: no import circle (counting imports inside functions
too), no module over 600 lines, no function over 80 lines but the named exceptions.

A module-level circle breaks at import time only in some orders; one hidden behind a
function-level import works until someone moves the import up. Both make the layering
unreadable, so every ``from .x import`` / ``import musenet_hf.x`` anywhere in a module's source
counts as an edge here (``cli.py``'s ``importlib`` table of subcommands is a string, not an edge).
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "musenet_hf"


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module name -> the package's modules it imports anywhere in its source."""
    modules = {p.stem for p in package.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in package.glob("*.py"):
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level == 1 or (node.module or "").split(".")[0] == "musenet_hf":
                    parts = (node.module or "").split(".")
                    parts = parts[1:] if node.level == 0 else parts
                    if parts and parts[0]:
                        deps.add(parts[0])
                    else:  # `from . import x`: x is a module, or a name of __init__
                        deps |= {a.name if a.name in modules else "__init__" for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {a.name.split(".")[1] for a in node.names if a.name.startswith("musenet_hf.")}
        graph[path.stem] = (deps & modules) - {path.stem}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of ``graph`` as ``[a, b, ..., a]``, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_find_cycle_finds_a_planted_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_package_has_no_import_circle():
    graph = import_graph()
    assert "critic" in graph["pipeline_musenet"]  # the graph sees real edges (and function-level ones)
    assert "pipeline_musenet" in graph["embeddings_plot"]
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


# Functions allowed past 80 lines, each with why (issue 14). Anything else over the limits fails.
LONG_FUNCTIONS = {
    ("_midi_repair.py", "read_layout"): "the chunk walk of a damaged file: one pass, each repair beside its check",
    ("_midi_repair.py", "parse_track"): "the event loop of the tolerant parser: running status, repairs and the "
                                        "per-track state in one hot loop (a few MB/s)",
    ("demo.py", "build_demo"): "the Gradio page: one declarative layout whose components are wired to each other",
    ("generation.py", "generate_long"): "45 of its lines are the docstring; the loop calls one helper per step",
}


def test_modules_and_functions_stay_readable():
    too_long = []
    for path in sorted(PACKAGE.glob("*.py")):
        source = path.read_text("utf-8")
        if len(source.splitlines()) > 600:
            too_long.append(f"{path.name}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                if node.end_lineno - start + 1 > 80 and (path.name, node.name) not in LONG_FUNCTIONS:
                    too_long.append(f"{path.name}:{node.name}: {node.end_lineno - start + 1} lines")
    assert not too_long, "over 600 lines a module or 80 a function: " + "; ".join(too_long)
