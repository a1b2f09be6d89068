"""The agent core: one connection, the VIP handshake, message dispatch, signals and timers.

There is one :class:`Core` whatever the bus: the bus is a
:class:`~volttron.client.messagebus.base.Connection` chosen by name. Life of an agent
(docs/protocol.md §1.8, §4.1)::

    run() -> subsystems set up, ``onsetup`` -> connection opened
          -> link up: hello (msg id ``connect.hello.<n>``) -> welcome:
             ``connected`` = True, subsystems' connected(), ``onconnected``
             first welcome only: subsystems' start(), timers start, ``onstart`` and
             ``configuration`` receivers spawned
          -> ... until stop() ...
          -> ``onstop`` receivers (waited) -> subsystems' stop() -> ``agentstop`` to the router
          -> connection closed -> ``onfinish``

No welcome within :attr:`Core.welcome_timeout` (10 s) of starting stops the agent with a
:class:`~volttron.client.vip.agent.errors.ConnectError` naming the likely cause, kept in
:attr:`Core.failure`. When the link drops (the platform restarted), ``ondisconnected`` fires; when
it comes back the core says hello again by itself and, on the welcome, fires ``onconnected``
again (pub/sub re-sends its subscriptions then). A link down for :attr:`Core.reconnect_timeout`
seconds stops the agent.

The receive loop runs in one greenlet and calls each subsystem's handler inline; handlers that may
block hand the work to other greenlets (RPC requests get one each; pub/sub callbacks share an
in-order executor), so answers to the agent's own requests are always read.
"""

from __future__ import annotations

import errno
import logging
import os
import struct
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import gevent
from gevent.event import Event

from volttron.client.credentials import Credentials, resolve_credentials
from volttron.client.messagebus.address import redact_address
from volttron.client.messagebus.base import (
    BusClosed,
    BusError,
    BusEvent,
    BusTimeout,
    Connection,
    ConnectionParams,
    Message,
    connection_class,
)
from volttron.client.vip.agent.clock import Clock
from volttron.client.vip.agent.decorators import collect_annotations
from volttron.client.vip.agent.dispatch import Signal
from volttron.client.vip.agent.errors import Again, ConnectError, VIPError
from volttron.client.vip.agent.handshake import Handshake
from volttron.client.vip.agent.tasks import SIGNALS, AgentTasks
from volttron.utils.home import get_home
from volttron.utils.identities import is_valid_identity

if TYPE_CHECKING:
    from volttron.client.vip.agent.subsystems.base import SubsystemBase

_log = logging.getLogger(__name__)

ConnectionFactory = Callable[[ConnectionParams], Connection]


class Core(AgentTasks):
    """The connection to the platform and the life cycle of one agent."""

    # one Signal per name in SIGNALS, made in __init__
    onsetup: Signal
    onstart: Signal
    onstop: Signal
    onfinish: Signal
    onconnected: Signal
    ondisconnected: Signal
    onviperror: Signal
    onsockevent: Signal
    configuration: Signal

    welcome_timeout = 10.0
    """Seconds to wait for the router's welcome before giving up (docs/protocol.md §1.8 step 4)."""
    reconnect_timeout = 120.0
    """Seconds the link may stay down before the agent stops."""
    send_timeout = 10.0
    """Seconds a send may wait for the bus to accept a message (link down, back-pressure)."""
    stop_timeout = 30.0
    """Seconds ``onstop`` receivers are given to finish."""
    log_failures = True
    """Log :attr:`failure` at ERROR; runners that report it themselves turn this off."""

    def __init__(
        self,
        owner: Any,
        address: str | None = None,
        identity: str | None = None,
        context: Any = None,
        publickey: str | None = None,
        secretkey: str | None = None,
        serverkey: str | None = None,
        volttron_home: str | None = None,
        agent_uuid: str | None = None,
        reconnect_interval: float | None = None,
        version: str = "0.1",
        instance_name: str | None = None,
        messagebus: str | None = None,
        connection_factory: ConnectionFactory | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.owner = owner
        self._identity = identity or str(uuid.uuid4())
        if not is_valid_identity(self._identity):
            _log.warning(
                "identity %r has characters outside [A-Za-z0-9_.-]; other tools may reject it", self._identity
            )
        self._address = address
        self._context = context
        self._publickey = publickey
        self._secretkey = secretkey
        self._serverkey = serverkey
        self._volttron_home = volttron_home
        self._agent_uuid = agent_uuid
        self._reconnect_interval = reconnect_interval
        self._version = version
        self._instance_name = instance_name
        self.messagebus = messagebus or "zmq"
        self._connection_factory = connection_factory
        for name in SIGNALS:
            setattr(self, name, Signal(name))
        self._handlers: dict[str, Callable[[Message], None]] = {
            "hello": self._handle_hello,
            "error": self._handle_error,
        }
        self._error_handlers: dict[str, Callable[[VIPError, Message], None]] = {}
        self._hello_handler: Callable[[Message], None] | None = None
        self._extensions: list[SubsystemBase] = []
        self._connection: Connection | None = None
        self._credentials: Credentials | None = None
        self._init_tasks(clock)
        self.stop_requests = 0
        """How many times :meth:`stop` was called."""
        self._greenlet: gevent.Greenlet[..., Any] | None = None
        self._recv_greenlet: gevent.Greenlet[..., Any] | None = None
        self._handshake = Handshake(self)
        self._stop_event = Event()
        self._finished = Event()
        self._running_event: Event | None = None
        self._connected = False
        self._started = False
        self._stopping = False
        self._failure: BaseException | None = None
        self._router_identity: str | None = None
        self._hub: Any = None
        self._yield_requested = False

    # ------------------------------------------------------------------ properties

    @property
    def identity(self) -> str:
        """This agent's VIP identity."""
        return self._identity

    @property
    def agent_uuid(self) -> str | None:
        """The platform's id of this agent instance (``AGENT_UUID``), if launched by a platform."""
        return self._agent_uuid

    @property
    def instance_name(self) -> str | None:
        """The platform instance name: given, else asked of the router right after the first welcome."""
        return self._instance_name

    @instance_name.setter
    def instance_name(self, value: str | None) -> None:
        self._instance_name = value

    @property
    def connected(self) -> bool:
        """True between a welcome and the next disconnection."""
        return self._connected

    @property
    def address(self) -> str | None:
        """The address connected to (known once :meth:`run` resolved it)."""
        return self._credentials.address if self._credentials else self._address

    @property
    def publickey(self) -> str | None:
        """This agent's CURVE public key, once resolved."""
        return self._credentials.publickey if self._credentials else self._publickey

    @property
    def serverkey(self) -> str | None:
        """The platform's CURVE public key, once resolved."""
        return self._credentials.serverkey if self._credentials else self._serverkey

    @property
    def volttron_home(self) -> str:
        """The platform home this agent reads files from."""
        return str(self._volttron_home or get_home())

    @property
    def stopping(self) -> bool:
        """True once the agent has begun to stop."""
        return self._stopping

    @property
    def router_identity(self) -> str | None:
        """The router socket identity from the last welcome."""
        return self._router_identity

    @property
    def failure(self) -> BaseException | None:
        """Why the agent stopped on its own (no welcome, link lost), or None."""
        return self._failure

    @property
    def greenlet(self) -> gevent.Greenlet[..., Any] | None:
        """The greenlet running :meth:`run`."""
        return self._greenlet

    @property
    def connection(self) -> Connection | None:
        """The bus connection (None before :meth:`run` opens it)."""
        return self._connection

    def version(self) -> str:
        """The agent's version string."""
        return self._version

    # ------------------------------------------------------------------ subsystems

    def register(
        self,
        name: str,
        handler: Callable[[Message], None],
        error_handler: Callable[[VIPError, Message], None] | None = None,
    ) -> None:
        """Route incoming messages of subsystem ``name`` to ``handler`` (and its error frames)."""
        if name == "hello":
            self._hello_handler = handler
        else:
            self._handlers[name] = handler
        if error_handler is not None:
            self._error_handlers[name] = error_handler

    def add_extension(self, extension: SubsystemBase) -> None:
        """Add a subsystem whose setup/connected/start/stop hooks follow this core's life cycle."""
        self._extensions.append(extension)

    def send_vip(
        self,
        peer: str,
        subsystem: str,
        args: list[bytes] | None = None,
        msg_id: str = "",
        user: str = "",
        timeout: float | None = None,
    ) -> None:
        """Send one VIP message; waits up to ``timeout`` (default :attr:`send_timeout`) to queue it.

        Raises :class:`~volttron.client.vip.agent.errors.Again` when it cannot be queued in time or
        the agent has no connection (or it closed meanwhile), and
        :class:`~volttron.client.messagebus.base.BusError` when the bus rejects the message.
        """
        connection = self._connection
        if connection is None or connection.closed:
            raise Again(errno.EAGAIN, "the agent is not connected to a platform", peer, subsystem)
        message = Message(peer, subsystem, args if args is not None else [], msg_id, user)
        try:
            connection.send(message, self.send_timeout if timeout is None else timeout)
        except BusTimeout as exc:
            raise Again(errno.EAGAIN, str(exc), peer, subsystem) from exc
        except BusClosed as exc:
            raise Again(errno.EAGAIN, "the connection to the platform closed", peer, subsystem) from exc

    def send_reply(self, message: Message) -> None:
        """Send from the receive loop without ever waiting; a full queue drops the reply."""
        try:
            connection = self._connection
            if connection is not None:
                connection.send(message, 0)
        except BusError as exc:
            _log.debug("reply on %s to %r dropped: %s", message.subsystem, message.peer, exc)

    # ------------------------------------------------------------------ running

    def run(self, running_event: Event | None = None) -> None:
        """Run the agent until :meth:`stop`; ``running_event`` is set at the first welcome."""
        # run() is spawned (gevent.spawn(core.run): runner, testing kit), so this is a Greenlet
        self._greenlet = cast("gevent.Greenlet[..., Any]", gevent.getcurrent())
        self._hub = gevent.get_hub()
        self._running_event = running_event
        setup_done = False
        try:
            factory = self._connection_factory or self._bus_class()
            self._credentials = self._resolve_credentials(getattr(factory, "uses_curve_keys", True))
            notes = collect_annotations(self.owner)
            for method, signal in notes.get("core.signals", ()):
                getattr(self, signal).connect(method, self.owner)
            for method, (deadline, args, kwargs) in notes.get("core.schedule", ()):
                self.schedule(deadline, method, *args, **kwargs)
            for method, (period, args, kwargs, wait) in notes.get("core.periodic", ()):
                self.periodic(period, method, args, kwargs, wait)
            for extension in self._extensions:
                extension.on_setup(notes)
            setup_done = True
            self.onsetup.send(self)
            self._open(factory)
            self._stop_event.wait()
        except ConnectError as exc:
            self._failure = exc
            if self.log_failures:
                _log.error("%s", exc)
        finally:
            self._shutdown(setup_done)

    def _bus_class(self) -> ConnectionFactory:
        try:
            return connection_class(self.messagebus)
        except BusError as exc:
            raise ConnectError(f"cannot connect as {self._identity!r}: {exc}") from exc

    def _resolve_credentials(self, uses_curve_keys: bool) -> Credentials:
        if not uses_curve_keys:  # the bus authenticates otherwise; its back-end reads the options
            return Credentials(self._address or "", self._publickey, self._secretkey, self._serverkey)
        try:
            credentials = resolve_credentials(
                self._identity,
                self._address,
                self._publickey,
                self._secretkey,
                self._serverkey,
                self._volttron_home,
            )
        except Exception as exc:  # a malformed key or address: one clear error, not a traceback
            raise ConnectError(f"cannot connect as {self._identity!r}: {exc}") from exc
        if credentials.serverkey and not (credentials.publickey and credentials.secretkey):
            raise ConnectError(
                f"no CURVE key pair for identity {self._identity!r}: pass publickey/secretkey, set "
                "AGENT_PUBLICKEY/AGENT_SECRETKEY, or create "
                f"$VOLTTRON_HOME/keystores/{self._identity}/keystore.json"
            )
        return credentials

    def _open(self, factory: ConnectionFactory) -> None:
        credentials = self._credentials
        assert credentials is not None
        params = ConnectionParams(
            address=credentials.address,
            identity=self._identity,
            publickey=credentials.publickey,
            secretkey=credentials.secretkey,
            serverkey=credentials.serverkey,
            reconnect_interval=self._reconnect_interval,
            instance_name=self._instance_name,
            options={"context": self._context} if self._context is not None else {},
        )
        try:
            self._connection = factory(params)
            self._recv_greenlet = gevent.spawn(self._receive_loop, self._connection)
            self._handshake.start()
            self._connection.open(self._on_bus_event)
        except BusError as exc:
            raise ConnectError(
                f"cannot connect to {redact_address(credentials.address)} as {self._identity!r}: {exc}"
            ) from exc

    def _on_bus_event(self, event: BusEvent, detail: str) -> None:
        self.onsockevent.send(self, event=event, detail=detail)
        if self._stopping:
            return
        if self._handshake.on_bus_event(event, detail):
            self._connected = False
            _log.warning("lost the connection to the platform at %s; reconnecting",
                         redact_address(self.address or ""))
            for extension in self._extensions:
                _call_hook(extension, "on_disconnected")
            self.spawn(self.ondisconnected.send, self)

    def _handle_hello(self, message: Message) -> None:
        if self._handshake.is_welcome(message):
            self._welcomed(message)
        elif self._hello_handler is not None:
            self._hello_handler(message)

    def _welcomed(self, message: Message) -> None:
        if self._connected or self._stopping:
            return
        self._router_identity = message.text(2) if len(message.args) > 2 else None
        self._connected = True
        self._handshake.welcomed()
        first = not self._started
        self._started = True
        self.spawn(self._after_welcome, first)

    def _after_welcome(self, first: bool) -> None:
        for extension in self._extensions:
            _call_hook(extension, "on_connected")
        self.onconnected.send(self)
        if not first:
            _log.info("reconnected to the platform as %r", self._identity)
            return
        for extension in self._extensions:
            _call_hook(extension, "on_start")
        self._start_timers()
        self.onstart.sendby(self._spawn_receiver, self)
        self.configuration.sendby(self._spawn_receiver, self)
        if self._running_event is not None:
            self._running_event.set()

    def fail(self, error: ConnectError) -> None:
        """Stop the agent because it cannot be (or stay) part of the platform; kept in :attr:`failure`."""
        self._failure = error
        if self.log_failures:
            _log.error("%s", error)
        self._stop_event.set()

    # ------------------------------------------------------------------ receiving

    def _receive_loop(self, connection: Connection) -> None:
        recv = connection.recv
        handlers = self._handlers
        while True:
            try:
                message = recv()
            except BusClosed:
                return
            except BusError:
                _log.exception("receiving failed; the agent stops")
                self.stop()
                return
            if message is None:
                continue
            handler = handlers.get(message.subsystem)
            if handler is None:
                self._unknown_subsystem(message)
                continue
            try:
                handler(message)
            except Exception:
                _log.exception("handling a %r message from %r failed", message.subsystem, message.peer)
            if self._yield_requested:
                self._yield_requested = False
                gevent.sleep(0)

    def let_woken_run(self) -> None:
        """From a handler in the receive loop: let the greenlets it woke run before the next read.

        The RPC subsystem asks for this after starting a request or settling a result, so that the
        answer (or the caller's next request) leaves before the loop reads again: reading first
        costs a failed read and a wait on the critical path of every round trip. Other messages
        (pub/sub deliveries) keep being read in a batch.
        """
        self._yield_requested = True

    def _unknown_subsystem(self, message: Message) -> None:
        _log.debug("no handler for subsystem %r from %r", message.subsystem, message.peer)
        reply = Message(
            message.peer,
            "error",
            [
                str(errno.EPROTONOSUPPORT).encode(),
                os.strerror(errno.EPROTONOSUPPORT).encode(),
                b"",
                message.subsystem.encode("iso-8859-1"),
            ],
            message.id,
            "",
        )
        self.send_reply(reply)

    def _handle_error(self, message: Message) -> None:
        args = message.args
        if len(args) < 4:
            _log.warning("malformed VIP error from %r: %r", message.peer, args)
            return
        errnum = _parse_errnum(args[0])
        error = VIPError.from_errno(errnum, message.text(1), message.text(2) or message.peer, message.text(3))
        self.onviperror.send(self, error=error, message=message)
        handler = self._error_handlers.get(error.subsystem or "")
        if handler is not None:
            handler(error, message)
        else:
            _log.debug("unhandled VIP error %s", error)

    # ------------------------------------------------------------------ stopping

    def stop(self, timeout: float | None = None) -> None:
        """Stop the agent; from outside the agent's greenlets, wait up to ``timeout`` for it to finish."""
        self.stop_requests += 1
        self._stop_event.set()
        greenlet = self._greenlet
        current = gevent.getcurrent()
        if greenlet is None or greenlet.dead or current is greenlet or current is gevent.get_hub():
            return
        if self._is_agent_greenlet(current):
            return  # an agent greenlet asked: it must return so the shutdown can proceed
        if self._finished.is_set():
            return
        greenlet.join(timeout)

    def in_receive_loop(self) -> bool:
        """True when called from the greenlet that reads the connection (it must never wait for mail)."""
        return gevent.getcurrent() is self._recv_greenlet

    def _is_agent_greenlet(self, current: Any) -> bool:
        return current is self._recv_greenlet or self._handshake.owns(current) or self._owns_greenlet(current)

    def wait_finished(self, timeout: float | None = None) -> bool:
        """Wait until the agent has finished; False on timeout."""
        return self._finished.wait(timeout)

    def _shutdown(self, setup_done: bool) -> None:
        self._stopping = True
        self._stop_event.set()
        self._handshake.cancel()
        self._cancel_timers()
        if setup_done:
            receivers = self.onstop.sendby(self._spawn_receiver, self)
            gevent.joinall(receivers, timeout=self.stop_timeout)
            for extension in reversed(self._extensions):
                _call_hook(extension, "on_stop")
        connection = self._connection
        if connection is not None and self._connected and self._handshake.link_up:
            try:
                connection.send(Message("", "agentstop", [self._identity.encode("iso-8859-1")]), 1.0)
            except BusError as exc:
                _log.debug("agentstop not sent: %s", exc)
        self._connected = False
        self._kill_greenlets()
        if connection is not None:
            connection.close(linger=1.0)
        if self._recv_greenlet is not None and self._recv_greenlet is not gevent.getcurrent():
            self._recv_greenlet.kill(block=False)
        try:
            self.onfinish.send(self)
        except Exception:
            _log.exception("an onfinish receiver failed")
        finally:
            self._finished.set()

    def statistics(self) -> dict[str, Any]:
        """Connection and dispatch counters for status output."""
        stats: dict[str, Any] = {"identity": self._identity, "connected": self._connected}
        stats.update(self._task_statistics())
        if self._connection is not None:
            stats["connection"] = self._connection.statistics()
        return stats


def _call_hook(extension: Any, hook: str) -> None:
    try:
        getattr(extension, hook)()
    except Exception:
        _log.exception("%s.%s failed", type(extension).__name__, hook)


def _parse_errnum(frame: bytes) -> int:
    try:
        return int(frame)
    except ValueError:
        if len(frame) == 4:  # the 9.x router packs numbers with struct "i"
            number: int = struct.unpack("<i", frame)[0]
            return number
        return -1
