"""The layering rules of DESIGN.md §3, checked on the source of every package.

Each rule is a function of (module name, imported name). The test walks every ``import`` in every
module (including imports inside functions) with ``ast``, so a forbidden import anywhere fails it.
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
