"""The ``RPC`` subsystem: JSON-RPC 2.0 between peers (docs/protocol.md §2.5).

Calling::

    result = self.vip.rpc.call('bob', 'add', 1, 2)       # AsyncResult
    result.get(timeout=10)                                 # 3, or raises
    self.vip.rpc.notify('bob', 'log', 'hi')                # no answer
    self.vip.rpc.batch('bob', [(False, 'add', [1, 2], {}), (True, 'log', ['x'], {})])

Errors: ``Unreachable`` when no peer has that identity (the router's EHOSTUNREACH frame, matched
by message id, arrives within milliseconds), ``MethodNotFound``, ``Unauthorized``,
``RemoteError`` (the method raised), ``ResultTimeout`` from ``get(timeout=...)``.

Serving::

    @RPC.export                  # or @RPC.export('name'), or self.vip.rpc.export(fn, 'name')
    @RPC.allow('edit_config')    # the caller's user must hold the capability
    def add(self, a, b): ...

Every request runs in its own greenlet, so a method may itself wait on other RPC calls (even back
to its caller) without stopping the agent from reading answers; answers to our own calls are
matched inline in the receive loop. During a call ``self.vip.rpc.context.vip_message`` is the
request message (``.peer`` is the caller's identity, ``.user`` its user id). How many requests run
at once, per caller and in total, and how many wait, is bounded (:mod:`~volttron.client.vip.agent.limits`,
``set_request_limits``); a request over its caller's bound is answered at once with a VIP ``EAGAIN``
error (the caller's result raises ``Again``) and a notification is dropped. A caller of a linked
platform is its principal ``<platform>:<identity>`` in both ``.peer`` and ``.user`` (``.platform``
names the platform), never one of our identities.

Capability checks (``@RPC.allow``) ask the auth subsystem for the caller's capabilities; when they
cannot be had (``platform.auth`` not reachable) the call is denied, never allowed.
"""

from __future__ import annotations

import errno
import json
import logging
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

import gevent.local

from volttron.client.messagebus.base import Message
from volttron.client.vip.agent.capabilities import CapabilitySource, check_capabilities
from volttron.client.vip.agent.decorators import annotate, dualmethod
from volttron.client.vip.agent.decorators import annotations as annotations_of  # not the __future__ name
from volttron.client.vip.agent.errors import Again, Unreachable, VIPError
from volttron.client.vip.agent.introspection import describe_method
from volttron.client.vip.agent.limits import RequestLimits, RequestScheduler
from volttron.client.vip.agent.results import AsyncResult, ResultsDictionary
from volttron.client.vip.agent.subsystems.base import SubsystemBase
from volttron.utils import jsonrpc
from volttron.utils.errors import FrameError
from volttron.utils.identities import remote_principal
from volttron.utils.jsonapi import decode, encode
from volttron.utils.jsonrpc import (
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    exception_to_json,
    json_error,
    json_method,
    json_result,
    parse_request,
)

if TYPE_CHECKING:
    from volttron.client.vip.agent.core import Core

_log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

EXPORTS = "rpc.exports"
ALLOW = "rpc.allow_capabilities"


class RPCContext:
    """What a method being called can learn about its call (per greenlet)."""

    def __init__(self) -> None:
        self._local = gevent.local.local()

    @property
    def vip_message(self) -> Message | None:
        """The request message of the call running in this greenlet (None outside a call)."""
        return getattr(self._local, "message", None)

    def _set(self, message: Message) -> None:
        self._local.message = message


class BatchResults(list[AsyncResult]):
    """The results of one batch, in request order (weakly referenced while pending)."""


class _ExportDecorator:
    """``RPC.export`` on the class: ``@RPC.export`` or ``@RPC.export('name')``."""

    @overload
    def __call__(self, name: F) -> F: ...

    @overload
    def __call__(self, name: str | None = None) -> Callable[[F], F]: ...

    def __call__(self, name: Any = None) -> Any:
        if callable(name):
            return annotate(name, EXPORTS, name.__name__)

        def decorate(method: F) -> F:
            return annotate(method, EXPORTS, name or method.__name__)

        return decorate


class RPC(SubsystemBase):
    """Call methods of other peers and serve this agent's exported methods."""

    def __init__(self, core: Core, owner: Any = None, auth_enabled: bool = True) -> None:
        super().__init__(core)
        self.owner = owner
        self.auth_enabled = auth_enabled
        self.context = RPCContext()
        self._exports: dict[str, Callable[..., Any]] = {}
        self._allowed: dict[str, set[str]] = {}
        self._results = ResultsDictionary()
        self._batches: weakref.WeakValueDictionary[str, BatchResults] = weakref.WeakValueDictionary()
        self._capabilities: CapabilitySource | None = None
        self._scheduler = RequestScheduler(core.run_job)
        self._busy_logged_at = float("-inf")
        core.register("RPC", self._handle, self._handle_error)
        core.register("external_rpc", self._handle_external, self._handle_error)

    # ------------------------------------------------------------------ exporting

    def on_setup(self, annotations: dict[str, list[tuple[Any, Any]]]) -> None:
        for method, name in annotations.get(EXPORTS, ()):
            self.export(method, name)

    @dualmethod.with_class_callable(_ExportDecorator())
    def export(self, method: Callable[..., Any], name: str | None = None) -> Callable[..., Any]:
        """Make ``method`` callable by peers as ``name`` (default: its ``__name__``).

        On the class, ``@RPC.export`` or ``@RPC.export('name')`` decorates a method to export it.
        """
        name = name or method.__name__
        self._exports[name] = method
        for capabilities in annotations_of(method, ALLOW):
            self._allowed.setdefault(name, set()).update(capabilities)
        return method

    def _allow_decorator(cls, capabilities: str | Iterable[str]) -> Callable[[F], F]:
        """Decorator: callers must hold ``capabilities`` (a name or a list of names)."""
        required = _capability_set(capabilities)

        def decorate(method: F) -> F:
            return annotate(method, ALLOW, required)

        return decorate

    @dualmethod.with_class_form(_allow_decorator)
    def allow(self, method: str | Callable[..., Any], capabilities: str | Iterable[str]) -> None:
        """Require ``capabilities`` of callers of exported ``method`` (a name or the function).

        On the class, ``@RPC.allow(capabilities)`` decorates an exported method.
        """
        name = method if isinstance(method, str) else method.__name__
        self._allowed[name] = _capability_set(capabilities)

    def get_allowed(self, method: str) -> list[str]:
        """The capabilities required to call ``method`` (see :meth:`allowed_methods` for restrictions)."""
        return sorted(self._allowed.get(method, ()))

    def set_allowed(self, method: str, capabilities: Iterable[str]) -> None:
        """Replace the capabilities required to call ``method``."""
        self._allowed[method] = _capability_set(capabilities)

    def allowed_methods(self) -> dict[str, list[str]]:
        """``{method: [capabilities]}`` for every restricted method (``[]``: nobody may call it)."""
        return {name: sorted(caps) for name, caps in self._allowed.items() if caps != {""}}

    @property
    def exports(self) -> dict[str, Callable[..., Any]]:
        """The exported methods by name (a copy)."""
        return dict(self._exports)

    def set_capability_source(self, source: CapabilitySource | None) -> None:
        """Where ``@RPC.allow`` checks get a user's capabilities (the auth subsystem)."""
        self._capabilities = source

    # ------------------------------------------------------------------ calling

    def call(self, peer: str, method: str, *args: Any, **kwargs: Any) -> AsyncResult:
        """Call ``method`` on ``peer``; the result resolves to its return value or raises.

        ``external_platform='name'`` routes the call to a peer of another platform (docs/protocol.md §3.6).
        """
        platform = kwargs.pop("external_platform", None)
        result = self._results.next(peer, f"RPC {method!r} on {peer!r}", platform or "")
        text = _dumps_request(json_method(result.ident, method, args, kwargs))
        self._send(peer, text, result.ident, platform, [result])
        return result

    def notify(self, peer: str, method: str, *args: Any, **kwargs: Any) -> None:
        """Call ``method`` on ``peer`` without an answer (errors are not reported)."""
        platform = kwargs.pop("external_platform", None)
        text = _dumps_request(json_method(None, method, args, kwargs))
        self._send(peer, text, "", platform, [])

    def batch(
        self,
        peer: str,
        requests: Iterable[tuple[bool, str, Iterable[Any], Mapping[str, Any]]],
        external_platform: str | None = None,
    ) -> list[AsyncResult] | None:
        """Send several requests ``(notify, method, args, kwargs)`` in one message.

        Returns the results of the non-notification requests, in order (None if there are none).
        """
        batch = BatchResults()
        items = []
        for notify, method, args, kwargs in requests:
            if notify:
                items.append(json_method(None, method, list(args), dict(kwargs or {})))
            else:
                result = self._results.next(peer, f"RPC {method!r} on {peer!r}", external_platform or "")
                batch.append(result)
                items.append(json_method(result.ident, method, list(args), dict(kwargs or {})))
        text = _dumps_request(items)
        ident = self._results.next().ident if batch else ""  # a fresh, unique message id
        if batch:
            self._batches[ident] = batch
        self._send(peer, text, ident, external_platform, batch)
        return list(batch) or None

    def _send(
        self, peer: str, text: str, ident: str, platform: str | None, results: list[AsyncResult]
    ) -> None:
        if platform:
            envelope = {
                "to_platform": platform,
                "to_peer": peer,
                "from_platform": "",
                "from_peer": "",
                "args": [text],
            }
            recipient, subsystem = "", "external_rpc"
            args = [b"send_platform", json.dumps(envelope).encode()]
        else:
            recipient, subsystem, args = peer, "RPC", [text.encode("ascii")]
        try:
            self.core.send_vip(recipient, subsystem, args, ident, timeout=0)
        except Again:
            # The link is down or the queue full: wait for it in a greenlet of our own, so that the
            # caller's result.get(timeout=...) alone bounds how long the caller waits.
            self.core.spawn(self._send_later, recipient, subsystem, args, ident, results)
        except VIPError as exc:
            self._fail(results, exc)

    def _send_later(
        self, recipient: str, subsystem: str, args: list[bytes], ident: str, results: list[AsyncResult]
    ) -> None:
        try:
            self.core.send_vip(recipient, subsystem, args, ident)
        except VIPError as exc:
            self._fail(results, exc)

    def _fail(self, results: list[AsyncResult], error: BaseException) -> None:
        for result in results:
            if self._results.pop(result.ident) is not None or not result.ready():
                result.set_exception(error)

    # ------------------------------------------------------------------ receiving

    def _handle(self, message: Message) -> None:
        units: list[Any] = []
        for frame in message.args:
            try:
                obj = decode(frame.decode("iso-8859-1"))  # Latin-1 text, as the original reads frames
            except ValueError:
                units.append(_PARSE_FAILED)
                continue
            if type(obj) is dict:
                if "method" in obj:
                    units.append(obj)
                else:
                    self._resolve(obj, message.peer, "")
            elif type(obj) is list:
                requests = [item for item in obj if not _is_answer(item)]
                for item in obj:
                    if _is_answer(item):
                        self._resolve(item, message.peer, "")
                if requests:
                    units.append(requests)
            else:
                units.append(obj)  # answered with "invalid request"
        if units:
            size = sum(len(frame) for frame in message.args)
            if not self._scheduler.submit(message.peer, lambda: self._serve(message, units), size):
                self._refuse_busy(message, units)
            else:
                self.core.let_woken_run()

    def _refuse_busy(self, message: Message, units: list[Any]) -> None:
        """Answer requests over the caller's bound with EAGAIN at once (notifications are dropped)."""
        if all(_is_notification(unit) for unit in units):
            return
        limits = self._scheduler.limits
        text = (f"{self.core.identity} is busy: {message.peer!r} has {limits.per_caller} requests in "
                f"progress and {limits.queued_per_caller} waiting at most; try again later")
        self._throttle_busy_log(message.peer)
        self.core.send_reply(Message(message.peer, "error", [str(errno.EAGAIN).encode(), text.encode("utf-8"),
                                                              b"", b"RPC"], message.id, ""))

    def _throttle_busy_log(self, peer: str) -> None:
        now = time.monotonic()
        if now - self._busy_logged_at >= BUSY_LOG_INTERVAL:
            self._busy_logged_at = now
            _log.warning("refusing RPC requests from %r: too many in progress (%d refused so far)",
                         peer, self._scheduler.refused)

    def set_request_limits(self, limits: RequestLimits) -> None:
        """Change how many requests this agent serves and queues per caller and in total."""
        self._scheduler.limits = limits

    def request_statistics(self) -> dict[str, int]:
        """Requests being served and waiting now, and how many were refused as busy."""
        return self._scheduler.statistics()

    def _resolve(self, answer: dict[str, Any], peer: str, platform: str) -> None:
        """Settle our pending call ``answer`` names, when ``peer`` of ``platform`` is who we asked."""
        ident = answer.get("id")
        result = self._results.get(ident) if isinstance(ident, str) else None
        if result is None:
            return
        if not answer_accepted(result, peer, platform):
            # someone else answering a call of ours (a guessed id): the call stays pending
            _log.warning("ignored an answer to a call to %r from %r%s", result.peer, peer,
                         f" of platform {platform!r}" if platform else "")
            return
        self._results.pop(result.ident)  # found by ident
        if "error" in answer:
            try:
                # an answer with "error" parses to a Response whose error is set
                error = cast(jsonrpc.Error, jsonrpc.parse_response(answer).error)
            except jsonrpc.Error as exc:
                error = exc
            result.set_exception(error)
        else:
            result.set(answer.get("result"))
        self.core.let_woken_run()

    def _serve(self, message: Message, units: list[Any]) -> None:
        frames = self._answers(message, units)
        if frames:
            try:
                self.core.send_vip(message.peer, "RPC", frames, message.id)
            except VIPError as exc:
                _log.warning("answer to %r not sent: %s", message.peer, exc)

    def _answers(self, message: Message, units: list[Any]) -> list[bytes]:
        self.context._set(message)
        frames = []
        for unit in units:
            if isinstance(unit, list):
                texts = [t for t in (self._dispatch(item, message) for item in unit) if t is not None]
                if texts:
                    frames.append(("[" + ", ".join(texts) + "]").encode("ascii"))
            else:
                text = self._dispatch(unit, message)
                if text is not None:
                    frames.append(text.encode("ascii"))
        return frames

    def _dispatch(self, obj: Any, message: Message) -> str | None:
        """The JSON text of the answer to one request, or None for a notification."""
        if obj is _PARSE_FAILED:
            return encode(json_error(None, PARSE_ERROR, "parse error"))
        ident = obj.get("id") if isinstance(obj, dict) else None
        try:
            request = parse_request(obj)
        except jsonrpc.Error as exc:
            return encode(exc.to_json(ident)) if ident is not None else None
        name = request.method
        method = self._exports.get(name) or self._builtin(name)
        if method is None:
            if request.is_notification:
                return None
            return encode(
                json_error(
                    ident,
                    METHOD_NOT_FOUND,
                    "unimplemented method",
                    detail=f"method '{name}' is not implemented",
                )
            )
        try:
            self._check_allowed(name, method, request.args, request.kwargs, message)
            response = json_result(ident, method(*request.args, **request.kwargs))
        except Exception as exc:
            if request.is_notification:
                _log.warning("notification %r from %r failed: %s", name, message.peer, exc)
                return None
            response = exception_to_json(ident, exc)
        if request.is_notification:
            return None
        try:
            return encode(response)
        except (TypeError, ValueError) as exc:
            return json.dumps(
                json_error(
                    ident,
                    jsonrpc.INTERNAL_ERROR,
                    "internal error",
                    detail=f"the result of {name!r} is not JSON serialisable: {exc}",
                )
            )

    def _builtin(self, name: str) -> Callable[..., Any] | None:
        if name == "inspect":
            return self._inspect_all
        if name.endswith(".inspect"):
            target = self._exports.get(name[: -len(".inspect")])
            if target is not None:
                return lambda: describe_method(target)
        return None

    def _inspect_all(self) -> dict[str, list[str]]:
        return {"methods": sorted(self._exports)}

    # ------------------------------------------------------------------ capabilities

    def _check_allowed(
        self, name: str, method: Callable[..., Any], args: list[Any], kwargs: dict[str, Any], message: Message
    ) -> None:
        required = self._allowed.get(name)
        if required is None or required == {""} or not self.auth_enabled:
            return  # not restricted; an empty set is a restriction nobody satisfies
        check_capabilities(name, method, args, kwargs, required, self._capabilities, message.user)

    # ------------------------------------------------------------------ errors, peers

    def _handle_error(self, error: VIPError, message: Message) -> None:
        result = self._results.pop(message.id)
        if result is not None:
            result.set_exception(error)
            return
        batch = self._batches.pop(message.id, None)
        for item in batch or ():
            if self._results.pop(item.ident) is not None:
                item.set_exception(error)

    def peer_dropped(self, sender: Any, peer: str = "", **kwargs: Any) -> None:
        """Fail calls waiting on ``peer`` (connected to the peer list's ``ondrop``)."""
        self._fail_pending(lambda r: r.peer == peer, f"peer {peer!r} left the platform", peer)

    def on_disconnected(self) -> None:
        self._fail_pending(lambda r: True, "lost the connection to the platform", None)

    def _fail_pending(self, which: Callable[[AsyncResult], bool], why: str, peer: str | None) -> None:
        for result in self._results.pending():
            if which(result) and self._results.pop(result.ident) is not None:
                result.set_exception(
                    Unreachable(errno.EHOSTUNREACH, why, result.peer if peer is None else peer, "RPC")
                )

    # ------------------------------------------------------------------ external platforms

    def _handle_external(self, message: Message) -> None:
        if len(message.args) < 2 or message.args[0] != b"send_peer":
            return
        if message.peer and not message.platform:
            # Only our router (or, on RabbitMQ, a broker link from another instance) delivers calls
            # of other platforms; a local peer sending one would be forging a remote caller.
            _log.warning("external_rpc from local peer %r ignored: only the router delivers them",
                         message.peer)
            return
        try:
            envelope = json.loads(message.args[1])
        except ValueError:
            envelope = None
        if not isinstance(envelope, dict) or not isinstance(envelope.get("args"), list):
            _log.warning("malformed external_rpc message from %r", message.peer)
            return
        # the router fills from_platform with the platform whose link it came over (a broker link
        # names its instance itself); from_peer is the identity that platform's router vouches for
        platform = message.platform or envelope.get("from_platform")
        from_peer = envelope.get("from_peer")
        if not isinstance(platform, str) or not isinstance(from_peer, str):
            _log.warning("external_rpc without its caller's platform and identity ignored")
            return
        units = []
        for text in envelope["args"]:
            try:
                obj = json.loads(text) if isinstance(text, str) else text
            except ValueError:
                continue
            if isinstance(obj, dict) and "method" not in obj:
                self._resolve(obj, from_peer, platform)
            else:
                units.append(obj)
        if units:
            self.core.spawn(self._serve_external, message, envelope, units, platform)

    def _serve_external(
        self, message: Message, envelope: dict[str, Any], units: list[Any], platform: str
    ) -> None:
        # the method sees the principal as the caller's peer too: services that trust "the caller's
        # own identity" (its config store, auth.update from platform.auth) never take B's agent for ours
        user = remote_caller(message, envelope)
        caller = Message(user, "RPC", [], message.id, user, platform)
        texts = [frame.decode("ascii") for frame in self._answers(caller, units)]
        if not texts:
            return
        reply = {
            # back to where the request came from: never a platform the request names otherwise
            "to_platform": platform,
            "to_peer": envelope["from_peer"],
            "from_platform": envelope.get("to_platform"),
            "from_peer": envelope.get("to_peer"),
            "args": texts,
        }
        try:
            self.core.send_vip("", "external_rpc", [b"send_platform", json.dumps(reply).encode()], message.id)
        except VIPError as exc:
            _log.warning("external answer not sent: %s", exc)


_PARSE_FAILED = object()
BUSY_LOG_INTERVAL = 10.0
"""Seconds between two warnings about refused requests."""


def _is_notification(unit: Any) -> bool:
    if isinstance(unit, list):
        return all(_is_notification(item) for item in unit)
    return isinstance(unit, dict) and unit.get("id") is None


def remote_caller(message: Message, envelope: dict[str, Any]) -> str:
    """The user whose capabilities ``@RPC.allow`` checks for a call that came as ``external_rpc``.

    Never the caller's identity as its platform wrote it: a caller of another platform is its own
    principal ``<platform>:<identity>`` (a linked platform's ``control.connection`` is not ours).
    Over ZeroMQ our router says who it is in the user frame (a local identity for a call from this
    platform, else the remote principal); a broker link (RabbitMQ) vouches only for the instance.
    """
    if message.platform:
        return remote_principal(message.platform, str(envelope.get("from_peer", "")))
    return message.user


def answer_accepted(result: AsyncResult, peer: str, platform: str) -> bool:
    """Whether an answer from ``peer`` of ``platform`` (``""``: ours) may settle ``result``.

    Only the peer (and platform) the call went to answers it; anyone else naming the call's id
    is ignored.
    """
    return result.peer == peer and result.platform == platform


def _is_answer(item: Any) -> bool:
    return type(item) is dict and "method" not in item and ("result" in item or "error" in item)


def _dumps_request(obj: Any) -> str:
    try:
        return encode(obj)
    except (TypeError, ValueError) as exc:
        raise FrameError(f"RPC arguments are not JSON serialisable: {exc}") from exc


def _capability_set(capabilities: str | Iterable[str]) -> set[str]:
    if isinstance(capabilities, str):
        return {capabilities}
    return {str(c) for c in capabilities}
