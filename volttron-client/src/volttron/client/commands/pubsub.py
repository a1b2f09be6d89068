"""``vctl publish TOPIC MESSAGE`` and ``vctl subscribe PREFIX``: the bus from a shell.

Both use vctl's own connection (identity ``control.connection``) and so its capabilities: a
protected topic is refused to vctl as to any agent without the capability. MESSAGE is JSON
(``'"text"'`` for a string, ``'{"a": 1}'``...). ``subscribe`` prints one line per message
(``topic sender message-as-JSON``, or with ``--json`` one JSON object per line) until it has
``--count`` messages or ``--seconds`` have passed; with neither it runs until Ctrl-C.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from volttron.client.commands.cli import EXIT_TIMEOUT, EXIT_USAGE, CommandError

if TYPE_CHECKING:
    from volttron.client.commands.connection import ControlConnection
    from volttron.client.commands.vctl import VctlOptions

POLL_SECONDS = 0.05


def parse_json_argument(text: str, what: str) -> Any:
    """``text`` parsed as JSON; a :class:`CommandError` (exit 2) naming ``what`` otherwise."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(
            f"{what} {text!r} is not JSON ({exc.msg} at column {exc.colno}); "
            f"quote a string as '\"{text}\"'",
            EXIT_USAGE,
        ) from None


def publish_message(connection: ControlConnection, topic: str, message: Any) -> int:
    """Publish ``message`` on ``topic``; returns how many subscribers the router delivered it to."""
    from volttron.client.commands.connection import translate_error
    from volttron.utils.errors import VolttronError

    timeout = connection.settings.timeout
    result = connection.agent.vip.pubsub.publish("pubsub", topic, headers={}, message=message)
    try:
        return int(result.get(timeout=timeout) or 0)
    except VolttronError as exc:
        raise translate_error(exc, f"publish on {topic!r}", "the pub/sub service", timeout) from exc


@dataclass(frozen=True)
class Received:
    """One message heard by :func:`listen`."""

    topic: str
    sender: str
    headers: dict[str, Any]
    message: Any

    def line(self) -> str:
        """``topic sender message`` on one line."""
        return f"{self.topic} {self.sender} {json.dumps(self.message, sort_keys=True)}"

    def as_json(self) -> str:
        """The whole message as one line of JSON."""
        return json.dumps({"topic": self.topic, "sender": self.sender, "headers": self.headers,
                           "message": self.message}, sort_keys=True)


def listen(connection: ControlConnection, prefix: str, on_message: Callable[[Received], None],
           count: int | None, seconds: float | None) -> int:
    """Subscribe to ``prefix`` and hand each message to ``on_message`` until ``count`` or ``seconds``.

    Returns the number of messages handed on. With ``count`` set and ``seconds`` spent first, a
    :class:`CommandError` with exit code 75 says how many came.
    """
    import gevent

    from volttron.client.commands.connection import translate_error
    from volttron.utils.errors import VolttronError

    heard = 0

    def callback(peer: str, sender: str, bus: str, topic: str, headers: Any, message: Any) -> None:
        nonlocal heard
        if count is not None and heard >= count:
            return
        heard += 1
        on_message(Received(topic, sender, dict(headers or {}), message))

    timeout = connection.settings.timeout
    try:
        connection.agent.vip.pubsub.subscribe("pubsub", prefix, callback).get(timeout=timeout)
    except VolttronError as exc:
        raise translate_error(exc, f"subscribe to {prefix!r}", "the pub/sub service", timeout) from exc
    deadline = None if seconds is None else time.monotonic() + seconds
    while count is None or heard < count:
        if deadline is not None and time.monotonic() >= deadline:
            if count is not None:
                raise CommandError(f"heard {heard} of {count} messages under {prefix!r} within {seconds:g} s",
                                   EXIT_TIMEOUT)
            break
        gevent.sleep(POLL_SECONDS)
    return heard


def _connected(opts: VctlOptions) -> Any:
    from volttron.client.commands.connection import connected

    return connected(opts.connection_settings())


@click.command()
@click.argument("topic")
@click.argument("message")
@click.pass_obj
def publish(opts: VctlOptions, topic: str, message: str) -> None:
    """Publish MESSAGE (JSON) on TOPIC as vctl; prints the number of subscribers reached."""
    value = parse_json_argument(message, "MESSAGE")
    if not topic.strip():
        raise CommandError("TOPIC must not be empty", EXIT_USAGE)
    with _connected(opts) as connection:
        reached = publish_message(connection, topic, value)
    if opts.json:
        click.echo(json.dumps({"topic": topic, "subscribers": reached}))
    else:
        click.echo(f"published on {topic} to {reached} subscriber(s)")


@click.command()
@click.argument("prefix", default="")
@click.option("-n", "--count", type=click.IntRange(min=1), help="Stop after N messages.")
@click.option("-s", "--seconds", type=click.FloatRange(min=0, min_open=True),
              help="Stop after this many seconds (with --count: exit 75 if fewer came).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per message.")
@click.pass_obj
def subscribe(opts: VctlOptions, prefix: str, count: int | None, seconds: float | None,
              as_json: bool) -> None:
    """Print messages published under PREFIX (default: everything) as they come."""
    json_lines = as_json or opts.json

    def show(received: Received) -> None:
        click.echo(received.as_json() if json_lines else received.line())

    with _connected(opts) as connection:
        listen(connection, prefix, show, count, seconds)
