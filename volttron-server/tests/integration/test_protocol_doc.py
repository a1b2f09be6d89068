"""The wire examples of docs/protocol.md are what the platform does.

Each ```vip block is replayed against a fresh platform with raw DEALER clients (one per name, each
with its own key and auth entry): a ``name -> frames`` line is sent as written, a ``name <- frames``
line must arrive at that client (other messages may come in between, e.g. peer-list news). Frames are
separated by `` | ``; ``''`` is an empty frame, ``*`` any frame, ``...`` any further frames, and a frame
starting with ``{`` or ``[`` is compared as parsed JSON.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[3] / "docs" / "protocol.md"
_BLOCK = re.compile(r"^```vip\n(.*?)^```", re.S | re.M)
_LINE = re.compile(r"^(?P<name>[a-z]+) (?P<way>->|<-) (?P<frames>.*)$")
ANY, REST = object(), object()


@dataclass
class Step:
    """One line of an example: who, which way, the frames (or patterns)."""

    name: str
    sends: bool
    frames: list[Any]
    text: str


def _frame(token: str) -> Any:
    if token == "''":
        return b""
    if token == "*":
        return ANY
    if token == "...":
        return REST
    if token[:1] in "{[":
        return json.loads(token)
    return token.encode("iso-8859-1")


def parse(text: str) -> list[list[Step]]:
    """The doc's ```vip blocks as lists of steps; a line that is not a step fails the test."""
    blocks = []
    for block in _BLOCK.findall(text):
        steps = []
        for line in block.splitlines():
            match = _LINE.match(line)
            assert match, f"not an example line in docs/protocol.md: {line!r}"
            frames = [_frame(token) for token in match["frames"].split(" | ")]
            steps.append(Step(match["name"], match["way"] == "->", frames, line))
        blocks.append(steps)
    return blocks


BLOCKS = parse(DOC.read_text(encoding="utf-8"))


def matches(pattern: list[Any], frames: list[bytes]) -> bool:
    """Whether received ``frames`` fit ``pattern`` (see the module docstring)."""
    for i, want in enumerate(pattern):
        if want is REST:
            return True
        if i >= len(frames):
            return False
        got = frames[i]
        if want is ANY:
            continue
        if isinstance(want, (dict, list)):
            try:
                if json.loads(got) != want:
                    return False
            except ValueError:
                return False
        elif got != want:
            return False
    return len(frames) == len(pattern)


def test_the_doc_has_the_examples_it_promises() -> None:
    assert len(BLOCKS) >= 6, "docs/protocol.md lost its vip examples"
    assert all(any(not s.sends for s in block) for block in BLOCKS), "an example that expects nothing"


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_an_example_of_the_protocol_doc_runs_as_written(running_platform, index: int) -> None:
    clients: dict[str, Any] = {}
    for step in BLOCKS[index]:
        client = clients.get(step.name)
        if client is None:
            client = clients[step.name] = running_platform.client(step.name)
        if step.sends:
            client.send_frames([json.dumps(f).encode("ascii") if isinstance(f, (dict, list)) else f
                                for f in step.frames])
        else:
            try:
                client.recv_until(lambda m, pattern=step.frames: matches(pattern, m.frames), timeout=15)
            except AssertionError as exc:
                raise AssertionError(f"docs/protocol.md example {index + 1}: expected\n  {step.text}\n"
                                     f"{exc}") from None


def test_the_matcher_refuses_what_differs() -> None:
    pattern = [b"", b"VIP1", ANY, b"x", {"a": 1}]
    assert matches(pattern, [b"", b"VIP1", b"u", b"x", b'{"a": 1}'])
    assert not matches(pattern, [b"", b"VIP1", b"u", b"x", b'{"a": 2}'])
    assert not matches(pattern, [b"", b"VIP1", b"u", b"x", b'{"a": 1}', b"more"])
    assert matches([b"a", REST], [b"a", b"b", b"c"])
    assert not matches([b"a", b"b"], [b"a"])
