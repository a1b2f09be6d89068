"""The layering rules, checked on the source of every package.

``volttron.utils`` (standard library, PyYAML, cryptography) <- ``volttron.client`` (gevent, pyzmq,
pika, click) <- ``volttron.server``; agents import only the client and utils; nothing imports the
server. Each rule is a function of (module name, imported name). The test walks every ``import`` in
every module (including imports inside functions) with ``ast``, so a forbidden import anywhere fails
it. Inside the server, services depend on the platform's context (``volttron.server.context``), never
on the platform; and no group of modules imports itself round, deferred imports counted (imports
under ``if TYPE_CHECKING:`` are not run, so they are not counted).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {
    "volttron.utils": ROOT / "volttron-utils/src/volttron/utils",
    "volttron.client": ROOT / "volttron-client/src/volttron/client",
    "volttron.server": ROOT / "volttron-server/src/volttron/server",
    "volttron_listener_agent": ROOT / "volttron-listener-agent/src/volttron_listener_agent",
}


def _modules():
    for package, folder in SOURCES.items():
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            yield ".".join([package, *parts]), path


def _imports(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def _runtime_imports(path: Path):
    """The imports of ``path`` that run (any depth, not under ``if TYPE_CHECKING:``), as ``ast`` nodes."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        test = node.test if isinstance(node, ast.If) else None
        if test is not None and getattr(test, "id", getattr(test, "attr", None)) == "TYPE_CHECKING":
            skipped.update(id(sub) for sub in ast.walk(node))
    return [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) and id(n) not in skipped]


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules among ``modules`` that it imports when it runs."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in _runtime_imports(path):
            if isinstance(node, ast.Import):
                graph[name].update(a.name for a in node.names if a.name in modules)
            elif node.level == 0 and node.module:
                graph[name].update(f"{node.module}.{a.name}" for a in node.names
                                   if f"{node.module}.{a.name}" in modules)
                if node.module in modules:
                    graph[name].add(node.module)
        graph[name].discard(name)
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other round (strongly connected, more than one module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        cycles.append(sorted(group))
    return cycles


def test_no_import_cycles_deferred_imports_included() -> None:
    cycles = import_cycles(import_graph(dict(_modules())))
    assert not cycles, "modules that import each other round:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_check_finds_a_planted_cycle(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.py", tmp_path / "b.py", tmp_path / "c.py"
    a.write_text("import volttron.server.pkg.b\n")
    b.write_text("def later():\n    from volttron.server.pkg import c\n")  # deferred: still a cycle
    c.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import volttron.server.pkg.b\n"
                 "from volttron.server.pkg.a import x\n")
    modules = {"volttron.server.pkg.a": a, "volttron.server.pkg.b": b, "volttron.server.pkg.c": c}
    assert import_cycles(import_graph(modules)) == [sorted(modules)]
    c.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import volttron.server.pkg.a\n")
    assert import_cycles(import_graph(modules)) == []


def _top(name: str) -> str:
    return name.split(".")[0]


def _violation(module: str, imported: str) -> str | None:
    top = _top(imported)
    if module.startswith("volttron.utils"):
        if top in {"gevent", "zmq", "pika", "click", "psutil"}:
            return f"volttron.utils must not import {top}"
        if imported.startswith("volttron.") and not imported.startswith("volttron.utils"):
            return "volttron.utils must not import another volttron package"
    if imported.startswith("volttron.server") and not module.startswith("volttron.server"):
        return "nothing outside the server imports volttron.server"
    if module.startswith("volttron.client") and top == "click" and ".commands" not in module:
        return "click is imported only under volttron.client.commands"
    if top == "zmq" and not _is_bus_module(module, "zmq"):
        return "zmq is imported only by the ZeroMQ modules"
    if top == "pika" and not _is_bus_module(module, "rmq"):
        return "pika is imported only by the RabbitMQ modules"
    if module.startswith("volttron.server.services") and imported == "volttron.server.platform":
        return "services depend on volttron.server.context, never on the platform"
    if module.startswith("volttron_listener_agent") and imported.startswith("volttron.") and not (
        imported.startswith(("volttron.client", "volttron.utils"))
    ):
        return "agents import only volttron.client and volttron.utils"
    return None


def _is_bus_module(module: str, bus: str) -> bool:
    leaf = module.rsplit(".", 1)[-1]
    return bus in leaf or f".{bus}." in module + "." or f".{bus}_" in module


@pytest.mark.parametrize("module,path", list(_modules()), ids=lambda v: v if isinstance(v, str) else "")
def test_module_respects_layering(module: str, path: Path) -> None:
    problems = [
        f"{path.relative_to(ROOT)}:{line}: imports {name}: {why}"
        for line, name in _imports(path)
        if (why := _violation(module, name))
    ]
    assert not problems, "\n".join(problems)


def test_no_namespace_init() -> None:
    inits = [p for p in ROOT.glob("volttron-*/src/volttron/__init__.py")]
    assert not inits, f"volttron is a PEP 420 namespace package; remove {inits}"


@pytest.mark.parametrize(
    "module,imported,expected",
    [
        ("volttron.utils.keys", "zmq", "zmq"),
        ("volttron.utils.keys", "gevent.event", "gevent"),
        ("volttron.utils.keys", "volttron.client.vip", "another volttron"),
        ("volttron.client.vip.agent.core", "volttron.server.router", "volttron.server"),
        ("volttron.client.vip.agent.core", "click", "click"),
        ("volttron.client.vip.agent.core", "zmq.green", "zmq"),
        ("volttron.client.messagebus.zmq", "pika", "pika"),
        ("volttron_listener_agent.agent", "volttron.server", "volttron.server"),
        ("volttron.server.services.web.service", "volttron.server.platform", "context"),
    ],
)
def test_rules_catch_forbidden_imports(module: str, imported: str, expected: str) -> None:
    why = _violation(module, imported)
    assert why is not None and expected in why


@pytest.mark.parametrize(
    "module,imported",
    [
        ("volttron.client.messagebus.zmq", "zmq.green"),
        ("volttron.client.messagebus.rmq", "pika"),
        ("volttron.server.router.zmq_router", "zmq"),
        ("volttron.client.commands.vctl", "click"),
        ("volttron.server.main", "volttron.client.vip.agent"),
        ("volttron_listener_agent.agent", "volttron.client.vip.agent"),
    ],
)
def test_rules_allow_permitted_imports(module: str, imported: str) -> None:
    assert _violation(module, imported) is None
