"""A type checker sees the agent API's real signatures (issue 14 item 4).

``dualmethod`` once erased them (``Callable[..., T]``): a wrong subscription callback or a misspelt
keyword passed the check, and ``@RPC.export`` made a method ``Any``. Here mypy checks a small agent
and must report exactly the mistakes in it.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from volttron.client.vip.agent.decorators import dualmethod

api = pytest.importorskip("mypy.api", reason="mypy is a development tool (scripts/requirements-dev.txt)")

AGENT = textwrap.dedent(
    """
    from typing import Any

    from volttron.client.vip.agent import RPC, Agent, Core, PubSub


    class Checked(Agent):
        @PubSub.subscribe("pubsub", "devices")
        def on_device(self, peer: str, sender: str, bus: str, topic: str,
                      headers: dict[str, Any], message: Any) -> None: ...

        @Core.periodic(30)
        def tick(self) -> None: ...

        @RPC.allow("admin")
        def guarded(self) -> int:
            return 1

        @RPC.export
        def hello(self, x: int) -> int:
            return x

        @RPC.export("named")
        def hello_named(self, x: int) -> int:
            return x

        def configure(self, config_name: str, action: str, contents: Any) -> None: ...

        def ok(self) -> None:
            self.vip.pubsub.subscribe("pubsub", "alerts", self.on_device, bus="")
            self.core.schedule(0.0, self.tick)
            assert self.vip.config is not None
            self.vip.config.subscribe(self.configure, actions=["NEW"], pattern="config")

        def wrong(self) -> None:
            self.vip.pubsub.subscribe("pubsub", "alerts", lambda peer, sender: None)  # MISTAKE 1
            self.vip.pubsub.subscribe("pubsub", "alerts", self.on_device, buss="")  # MISTAKE 2
            PubSub.subscribe("pubsub", "x", self.on_device)  # MISTAKE 3: the decorator form
            self.core.periodic("soon", self.tick)  # MISTAKE 4
            assert self.vip.config is not None
            self.vip.config.subscribe(lambda name: None)  # MISTAKE 5
            self.hello("x")  # MISTAKE 6: exported methods keep their types
            self.hello_named("x")  # MISTAKE 7
    """
)


def test_mypy_reports_the_mistakes_and_only_those(tmp_path: Path) -> None:
    source = tmp_path / "checked_agent.py"
    source.write_text(AGENT)
    out, err, status = api.run(
        [
            "--strict",
            "--no-error-summary",
            "--cache-dir", str(tmp_path / "cache"),
            "--config-file", "",
            str(source),
        ]
    )
    errors = [line for line in out.splitlines() if ": error:" in line]
    lines = AGENT.splitlines()
    flagged = sorted({lines[int(line.split(":")[1]) - 1].split("# ")[-1] for line in errors})
    assert flagged == [f"MISTAKE {n}" + rest for n, rest in
                       [(1, ""), (2, ""), (3, ": the decorator form"), (4, ""), (5, ""),
                        (6, ": exported methods keep their types"), (7, "")]], out + err
    assert status == 1


def test_dualmethod_forms_at_run_time() -> None:
    class Thing:
        def _make(cls, label: str) -> str:
            return f"{cls.__name__}:{label}"

        @dualmethod.with_class_form(_make)
        def make(self, label: str, times: int) -> str:
            """Made on an instance."""
            return label * times

    assert Thing.make("x") == "Thing:x"
    assert Thing().make("ab", 2) == "abab"
    assert Thing.__dict__["make"].__doc__ == "Made on an instance."
