"""``agent.vip.rpc`` in a unit test: registered answers for the agent's calls, and calls into it.

::

    harness.rpc.respond("platform.historian", "query", {"values": []})          # a value
    harness.rpc.respond("weather", "forecast", lambda city: {"city": city})       # computed
    harness.rpc.respond("bad.peer", "get", RuntimeError("boom"))                  # raised remotely
    ...
    assert harness.rpc.invoke("set_point", "ahu1", 21.5, caller="ui") == "ok"    # as a peer calls it
    assert harness.rpc.calls[-1].method == "query"

A call to a peer nothing was registered for fails with
:class:`~volttron.client.vip.agent.errors.Unreachable`, to a registered peer without that method
with :class:`~volttron.utils.jsonrpc.MethodNotFound`, and a handler's exception arrives as the
``RemoteError`` the platform would deliver. Arguments and results travel through JSON, so what
could not cross the wire fails here too. ``invoke`` checks ``@RPC.allow`` against the
``capabilities`` given (none by default) and sets ``vip.rpc.context.vip_message``.
"""

from __future__ import annotations

import errno
import itertools
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from volttron.client.messagebus.base import Message
from volttron.client.vip.agent.capabilities import check_capabilities
from volttron.client.vip.agent.decorators import annotations as notes_of
from volttron.client.vip.agent.errors import Unreachable
from volttron.client.vip.agent.results import AsyncResult
from volttron.client.vip.agent.subsystems.base import SubsystemBase
from volttron.client.vip.agent.subsystems.rpc import ALLOW, EXPORTS, RPCContext
from volttron.utils.errors import FrameError, VolttronError
from volttron.utils.jsonrpc import (
    METHOD_NOT_FOUND,
    Error,
    MethodNotFound,
    exception_from_json,
    exception_to_json,
)

_MISSING = object()


class UnknownMethodError(VolttronError, LookupError):
    """``invoke`` named a method the agent does not export."""


@dataclass(frozen=True)
class RpcCall:
    """One call the agent made (``notify`` calls have ``notify=True``)."""

    peer: str
    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    notify: bool = False
    external_platform: str | None = None


class FakeRPC(SubsystemBase):
    """See the module docstring."""

    _ids = itertools.count(1)

    def __init__(self, core: Any, owner: Any = None, auth_enabled: bool = True) -> None:
        super().__init__(core)
        self.owner = owner
        self.auth_enabled = auth_enabled
        self.context = RPCContext()
        self.calls: list[RpcCall] = []
        """Every call and notification the agent made, oldest first."""
        self._exports: dict[str, Callable[..., Any]] = {}
        self._allowed: dict[str, set[str]] = {}
        self._peers: dict[str, dict[str, Any]] = {}

    # ----- exports (the agent's side)

    def on_setup(self, annotations: dict[str, list[tuple[Any, Any]]]) -> None:
        for method, name in annotations.get(EXPORTS, ()):
            self.export(method, name)

    def export(self, method: Callable[..., Any], name: str | None = None) -> Callable[..., Any]:
        """Make ``method`` callable as ``name`` (default: its ``__name__``)."""
        name = name or method.__name__
        self._exports[name] = method
        for capabilities in notes_of(method, ALLOW):
            self._allowed.setdefault(name, set()).update(capabilities)
        return method

    def allow(self, method: str | Callable[..., Any], capabilities: str | Iterable[str]) -> None:
        """Require ``capabilities`` of callers of ``method``."""
        name = method if isinstance(method, str) else method.__name__
        self._allowed[name] = _capability_set(capabilities)

    def get_allowed(self, method: str) -> list[str]:
        """The capabilities required to call ``method``."""
        return sorted(self._allowed.get(method, ()))

    def set_allowed(self, method: str, capabilities: Iterable[str]) -> None:
        """Replace the capabilities required to call ``method``."""
        self._allowed[method] = _capability_set(capabilities)

    def allowed_methods(self) -> dict[str, list[str]]:
        """``{method: [capabilities]}`` for every restricted method."""
        return {name: sorted(caps) for name, caps in self._allowed.items() if caps}

    @property
    def exports(self) -> dict[str, Callable[..., Any]]:
        """The exported methods by name (a copy)."""
        return dict(self._exports)

    def set_capability_source(self, source: Any) -> None:
        """Accepted for compatibility; :meth:`invoke` takes the caller's capabilities."""

    def peer_dropped(self, peer: str) -> None:
        """Nothing is pending in a unit test."""

    # ----- calls (the agent calling others)

    def call(self, peer: str, method: str, *args: Any, **kwargs: Any) -> AsyncResult:
        """Answer from what the test registered (see the module docstring)."""
        platform = kwargs.pop("external_platform", None)
        result = AsyncResult(description=f"RPC {method!r} on {peer!r}")
        try:
            value = self._answer(peer, method, args, kwargs, platform, notify=False)
        except (Error, Unreachable) as exc:
            result.set_exception(exc)
        else:
            result.set(value)
        return result

    def notify(self, peer: str, method: str, *args: Any, **kwargs: Any) -> None:
        """Record the notification and run its handler; answers and errors are dropped."""
        platform = kwargs.pop("external_platform", None)
        try:
            self._answer(peer, method, args, kwargs, platform, notify=True)
        except (Error, Unreachable):
            pass  # a notification never reports anything back, as on the platform

    def batch(
        self,
        peer: str,
        requests: Iterable[tuple[bool, str, Iterable[Any], Mapping[str, Any]]],
        external_platform: str | None = None,
    ) -> list[AsyncResult] | None:
        """Each request in turn; the results of the non-notifications, in order."""
        results = []
        for notify, method, args, kwargs in requests:
            extra = {"external_platform": external_platform} if external_platform else {}
            if notify:
                self.notify(peer, method, *args, **dict(kwargs or {}), **extra)
            else:
                results.append(self.call(peer, method, *args, **dict(kwargs or {}), **extra))
        return results or None

    def _answer(
        self,
        peer: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        platform: str | None,
        notify: bool,
    ) -> Any:
        args_json = _through_json(list(args), f"arguments of {method!r} on {peer!r}")
        kwargs_json = _through_json(dict(kwargs), f"keyword arguments of {method!r} on {peer!r}")
        self.calls.append(RpcCall(peer, method, tuple(args_json), kwargs_json, notify, platform))
        if peer == self.core.identity and not platform:
            handler = self._exports.get(method, _MISSING)
        elif peer in self._peers:
            handler = self._peers[peer].get(method, _MISSING)
        else:
            raise Unreachable(
                errno.EHOSTUNREACH, "no such peer (nothing registered for it in the test)", peer, "RPC"
            )
        if handler is _MISSING:
            raise MethodNotFound(
                METHOD_NOT_FOUND, "unimplemented method", {"detail": f"method '{method}' is not implemented"}
            )
        if isinstance(handler, BaseException):
            raise _as_received(handler)
        if callable(handler):
            try:
                value = handler(*args_json, **kwargs_json)
            except Exception as exc:  # the caller gets what the wire would carry
                raise _as_received(exc) from None
        else:
            value = handler
        return _through_json(value, f"result of {method!r} on {peer!r}")

    # ----- the test's API

    def respond(self, peer: str, method: str, answer: Any) -> None:
        """Answer calls of ``method`` on ``peer``: a value, a callable computing it, or an exception."""
        self._peers.setdefault(peer, {})[method] = answer

    def add_peer(self, peer: str, methods: Mapping[str, Any] | None = None) -> None:
        """Make ``peer`` reachable (its methods answered as by :meth:`respond`)."""
        self._peers.setdefault(peer, {}).update(methods or {})

    def remove_peer(self, peer: str) -> None:
        """Make ``peer`` unreachable again."""
        self._peers.pop(peer, None)

    def calls_to(self, peer: str, method: str | None = None) -> list[RpcCall]:
        """The calls the agent made to ``peer`` (and ``method``), oldest first."""
        return [c for c in self.calls if c.peer == peer and (method is None or c.method == method)]

    def invoke(
        self,
        method: str,
        *args: Any,
        caller: str = "test.caller",
        capabilities: Iterable[str] | Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call the agent's exported ``method`` as peer ``caller`` holding ``capabilities`` would.

        Returns the result after a JSON round trip. Exceptions raised by the method propagate
        unchanged, and :class:`~volttron.utils.jsonrpc.Unauthorized` is raised when ``@RPC.allow``
        requires a capability the caller lacks.
        """
        function = self._exports.get(method)
        if function is None:
            known = ", ".join(sorted(self._exports)) or "none"
            raise UnknownMethodError(f"the agent exports no method {method!r} (exports: {known})")
        args = tuple(_through_json(list(args), f"arguments of {method!r}"))
        kwargs = _through_json(dict(kwargs), f"keyword arguments of {method!r}")
        required = self._allowed.get(method)
        if required and self.auth_enabled:
            held = _capability_map(capabilities)
            check_capabilities(method, function, list(args), kwargs, required, lambda user: held, caller)
        self.context._set(Message(caller, "RPC", [], f"test.{next(self._ids)}", caller))
        value = function(*args, **kwargs)
        return _through_json(value, f"result of {method!r}")


def _capability_set(capabilities: str | Iterable[str]) -> set[str]:
    if isinstance(capabilities, str):
        return {capabilities}
    return {str(c) for c in capabilities}


def _capability_map(capabilities: Iterable[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    if capabilities is None:
        return {}
    if isinstance(capabilities, Mapping):
        return dict(capabilities)
    if isinstance(capabilities, str):
        return {capabilities: None}
    return {str(c): None for c in capabilities}


def _as_received(exc: BaseException) -> Error:
    """The exception a caller receives for ``exc`` raised on the far side."""
    answer = exception_to_json("fake", exc)["error"]
    return exception_from_json(answer["code"], answer["message"], answer.get("data"))


def _through_json(value: Any, what: str) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise FrameError(f"{what} must be JSON serialisable: {exc}") from exc
