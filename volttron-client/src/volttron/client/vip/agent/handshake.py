"""Joining the platform and staying joined (docs/protocol.md §1.8).

:class:`Handshake` watches the link the connection reports: whenever it comes up it sends hello
(message id ``connect.hello.<n>``, repeated while no welcome arrives), and it turns silence into
a clear :class:`~volttron.client.vip.agent.errors.ConnectError`:

* no welcome within ``welcome_timeout`` of starting: the platform is not running, refused the
  CURVE handshake, or ignores us (an agent with our identity is already connected, or our key is
  not authorized) - the message says which, as far as the link events tell;
* the link down for ``reconnect_timeout`` after having been welcomed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import gevent
from gevent.event import Event

from volttron.client.messagebus.address import redact_address
from volttron.client.messagebus.base import BusError, BusEvent, Message
from volttron.client.vip.agent.errors import ConnectError, VIPError

if TYPE_CHECKING:
    from volttron.client.vip.agent.core import Core

_log = logging.getLogger(__name__)

HELLO_ID_PREFIX = "connect.hello."
HELLO_REPEAT_MAX = 4.0
"""Seconds between hellos once the first few went unanswered."""


class Handshake:
    """Hello on every link-up, the welcome watchdog and the link-lost timer of one core."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.link_up = False
        self.ever_linked = False
        self.handshake_failure: str | None = None
        self.hello_count = 0
        self._welcomed = Event()
        self._watchdog: gevent.Greenlet[..., Any] | None = None
        self._link_lost: gevent.Greenlet[..., Any] | None = None
        self._hello: gevent.Greenlet[..., Any] | None = None

    def start(self) -> None:
        """Arm the welcome watchdog; call before opening the connection."""
        self._watchdog = self.core.clock.spawn_later(self.core.welcome_timeout, self._welcome_overdue)

    def on_bus_event(self, event: BusEvent, detail: str) -> bool:
        """Track the link; True when the link just dropped after a welcome."""
        if event is BusEvent.CONNECTED:
            self.link_up = True
            self.ever_linked = True
            self.handshake_failure = None
            # a link that comes back before the welcome gets a new hello at once: the router may
            # have forgotten the old connection between our hello and its welcome
            if self._hello is not None and not self._hello.dead:
                self._hello.kill(block=False)
            self._hello = gevent.spawn(self._say_hello)
        elif event is BusEvent.DISCONNECTED:
            self.link_up = False
            self._welcomed.clear()
            if self.core.connected:
                self._link_lost = self.core.clock.spawn_later(
                    self.core.reconnect_timeout, self._link_lost_too_long
                )
                return True
        elif event is BusEvent.HANDSHAKE_FAILED:
            self.handshake_failure = detail or "handshake failed"
        return False

    @staticmethod
    def is_welcome(message: Message) -> bool:
        """True for the router's answer to our connection hello."""
        args = message.args
        return (
            bool(args)
            and args[0] == b"welcome"
            and message.peer == ""
            and message.id.startswith(HELLO_ID_PREFIX)
        )

    def welcomed(self) -> None:
        """The welcome arrived: stop the timers."""
        self._welcomed.set()
        self.cancel(keep_hello=True)

    def cancel(self, keep_hello: bool = False) -> None:
        """Kill the timers (and the hello loop unless ``keep_hello``)."""
        current = gevent.getcurrent()
        timers = [self._watchdog, self._link_lost] + ([] if keep_hello else [self._hello])
        for greenlet in timers:
            if greenlet is not None and greenlet is not current:
                greenlet.kill(block=False)
        self._watchdog = self._link_lost = None

    def owns(self, greenlet: object) -> bool:
        """True for the handshake's own greenlets."""
        return greenlet is not None and greenlet in (self._watchdog, self._link_lost, self._hello)

    def _say_hello(self) -> None:
        # Repeat while the link is up and no welcome came, waiting 1, 2, 4, then every
        # HELLO_REPEAT_MAX seconds: after a platform restart the first hello can race the new
        # router's start, and a router that lost the peer without the link going down (its welcome
        # failed) adds it again on the next message. The welcome watchdog bounds the repeats.
        core = self.core
        wait = 1.0
        while self.link_up and not core.connected and not core.stopping:
            msg_id = f"{HELLO_ID_PREFIX}{self.hello_count}"
            self.hello_count += 1
            try:
                core.send_vip("", "hello", [b"hello"], msg_id, timeout=core.welcome_timeout)
            except (VIPError, BusError) as exc:
                _log.debug("hello not sent: %s", exc)
                return
            if core.clock.wait(self._welcomed, min(wait, core.welcome_timeout)):
                return
            wait = min(wait * 2, HELLO_REPEAT_MAX)

    def _welcome_overdue(self) -> None:
        core = self.core
        if core.connected or core.stopping:
            return
        core.fail(ConnectError(self.overdue_reason()))

    def overdue_reason(self) -> str:
        """Why no welcome came, as well as the link events tell."""
        core = self.core
        address, identity, timeout = redact_address(core.address or ""), core.identity, core.welcome_timeout
        if self.handshake_failure:
            return (
                f"the platform at {address} refused the security handshake for identity {identity!r}: "
                "the agent's public key is not authorized there (vctl auth add), or the server key "
                "(VOLTTRON_SERVERKEY / known_hosts) is not that platform's"
            )
        if not self.ever_linked:
            return (
                f"could not reach the platform at {address} within {timeout:g} s as {identity!r}: "
                "is it running? (check VOLTTRON_HOME / VOLTTRON_VIP_ADDR)"
            )
        return (
            f"no welcome from the platform at {address} within {timeout:g} s for identity {identity!r}: "
            f"an agent with identity {identity!r} may already be connected, or the platform did not "
            "authorize this agent's key (vctl auth add)"
        )

    def _link_lost_too_long(self) -> None:
        core = self.core
        if not core.connected and not core.stopping:
            core.fail(
                ConnectError(
                    f"the platform at {redact_address(core.address or '')} has been unreachable for "
                    f"{core.reconnect_timeout:g} s; "
                    f"agent {core.identity!r} stops"
                )
            )
