"""The engine's layers (docs/ARCHITECTURE.md): every `crate::` import of a file
in `src/` points at its own layer or one below, and no files import each other
in a circle."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

# From the bottom up; the order lib.rs declares them in.
LAYERS = [
    {"crypto", "error", "log", "model", "net", "password", "time", "webauthn_eddsa", "weburl"},
    {"config"},
    {"storage"},
    {"http"},
    {"callbacks", "link", "metrics", "ratelimit", "session"},
    {"auth"},
    {"endpoint"},
    {"routes"},
    {"pipeline", "cleanup", "admin"},
    {"server"},
    {"bindings"},
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}
PATH = re.compile(r"\bcrate::((?:[a-z_][a-z0-9_]*::)*[a-z_][a-z0-9_]*)")
USE_GROUP = re.compile(r"\buse crate::\{([^;]*)\};", re.S)
SUPER = re.compile(r"\buse super::(?:\{([^;]*)\}|([a-z_][a-z0-9_]*))")


def module_of(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = [p for p in rel.parts if p != "mod"]
    return "::".join(parts) or "lib"


def files() -> dict[str, str]:
    return {module_of(p): p.read_text() for p in sorted(SRC.rglob("*.rs"))}


def imports(module: str, text: str, known: set[str]) -> set[str]:
    """The modules of the crate that `text` names, as their longest known path."""
    text = re.sub(r"#\[cfg\(test\)\]\s*mod tests \{.*", "", text, flags=re.S)
    names = set(PATH.findall(text))
    for group in USE_GROUP.findall(text):
        names.update(re.findall(r"([a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*)", group))
    parent = module.rsplit("::", 1)[0] if "::" in module else ""
    for group, single in SUPER.findall(text):
        for name in re.findall(r"[a-z_][a-z0-9_]*", group or single):
            names.add(f"{parent}::{name}" if parent else name)
    found = set()
    for name in names:
        parts = name.split("::")
        for n in range(len(parts), 0, -1):
            candidate = "::".join(parts[:n])
            if candidate in known:
                if candidate != module:
                    found.add(candidate)
                break
    return found


def graph() -> dict[str, set[str]]:
    src = files()
    known = set(src)
    return {m: imports(m, text, known) for m, text in src.items() if m != "lib"}


def test_every_module_has_a_layer():
    tops = {m.split("::")[0] for m in files()} - {"lib"}
    assert tops <= set(LAYER), f"modules without a layer: {sorted(tops - set(LAYER))}"


def test_imports_only_look_down():
    upward = []
    for module, targets in graph().items():
        for target in targets:
            if LAYER[target.split("::")[0]] > LAYER[module.split("::")[0]]:
                upward.append(f"{module} -> {target}")
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(sorted(upward))


def test_no_import_circles():
    edges = graph()
    state: dict[str, int] = {}
    circles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                circles.append(
                    " -> ".join([*trail[trail.index(nxt) :], node, nxt])
                    if nxt in trail
                    else f"{node} -> {nxt}"
                )
            elif nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_the_checker_sees_an_upward_import(tmp_path):
    """The checker itself: a foundation naming the engine is an upward import."""
    text = "use crate::auth::Auth;\nfn f() { crate::pipeline::handle; }\n"
    assert imports("error", text, {"error", "auth", "pipeline"}) == {"auth", "pipeline"}
    grouped = "use crate::{auth::Auth, routes::session};\n"
    assert imports("error", grouped, {"error", "auth", "routes", "routes::session"}) == {
        "auth",
        "routes::session",
    }
