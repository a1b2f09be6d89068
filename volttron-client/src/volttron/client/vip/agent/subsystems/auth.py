"""The ``auth`` subsystem: capabilities for ``@RPC.allow`` checks (docs/protocol.md §2.11).

The user-to-capabilities table comes from ``platform.auth`` (``get_user_to_capabilities``) on first
need and is kept until ``platform.auth`` pushes a new one with ``auth.update`` (accepted from
``platform.auth`` only) or the link to the platform drops. When the table cannot be had, checks
deny. Method authorizations (``auth.get_rpc_authorizations`` ...) read and change what
``@RPC.allow`` requires; changing them needs ``modify_rpc_method_allowance``.

A platform of the published VOLTTRON (volttron-core 2.x) serves no ``get_user_to_capabilities``
(MethodNotFound). There each ``@RPC.allow`` check asks that platform's own decision instead,
``check_rpc_authorization(identity=caller, method_name="<us>.<method>", method_args={...})``, as its
own agents do: a call it confirms (e.g. its config store's ``config.update``, which its policy grants)
is allowed, anything else is refused and logged with the platform's reason; nothing is allowed
unasked. A batch of requests cannot be asked about one by one and is refused, saying so.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from gevent.lock import Semaphore

from volttron.client.known_identities import AUTH, PROCESS_IDENTITIES
from volttron.client.vip.agent.subsystems.base import SubsystemBase
from volttron.utils.jsonrpc import UNAUTHORIZED, MethodNotFound, Unauthorized, parse_request

if TYPE_CHECKING:
    from volttron.client.vip.agent.core import Core
    from volttron.client.vip.agent.subsystems.rpc import RPC

_log = logging.getLogger(__name__)

MODIFY_CAPABILITY = "modify_rpc_method_allowance"
FETCH_TIMEOUT = 10.0


def normalize_capabilities(value: Any) -> dict[str, Any]:
    """``{name: params or None}`` from the forms auth.json allows (a dict, or a list of names/dicts)."""
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    result: dict[str, Any] = {}
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
        for item in value:
            if isinstance(item, Mapping):
                result.update({str(k): v for k, v in item.items()})
            elif isinstance(item, str):
                result[item] = None
    return result


class Auth(SubsystemBase):
    """The capability table and the RPC method authorizations of this agent."""

    def __init__(self, core: Core, owner: Any, rpc: RPC) -> None:
        super().__init__(core)
        self.owner = owner
        self._rpc = rpc
        self._table: dict[str, dict[str, Any]] | None = None
        self._published = False
        self._per_call = False
        """The platform serves no table (the published VOLTTRON): ask it about every call."""
        self._lock = Semaphore()
        rpc.set_capability_source(self.get_capabilities)
        rpc.export(self.update, "auth.update")
        rpc.export(self.get_rpc_authorizations, "auth.get_rpc_authorizations")
        rpc.export(self.get_all_rpc_authorizations, "auth.get_all_rpc_authorizations")
        rpc.export(self.set_rpc_authorizations, "auth.set_rpc_authorizations")
        rpc.export(self.set_multiple_rpc_authorizations, "auth.set_multiple_rpc_authorizations")
        rpc.allow("auth.set_rpc_authorizations", MODIFY_CAPABILITY)
        rpc.allow("auth.set_multiple_rpc_authorizations", MODIFY_CAPABILITY)

    # ------------------------------------------------------------------ capabilities

    def get_capabilities(self, user: str) -> dict[str, Any]:
        """``{capability: params or None}`` of ``user``; raises when the table cannot be fetched."""
        if self._per_call:
            return self._confirmed_by_platform(user)
        table = self._table
        if table is None:
            try:
                table = self._fetch()
            except MethodNotFound:
                _log.info("%s serves no get_user_to_capabilities (a platform of the published VOLTTRON): "
                          "each restricted call is checked with its check_rpc_authorization", AUTH)
                self._per_call = True
                return self._confirmed_by_platform(user)
        return table.get(user, {})

    def _confirmed_by_platform(self, user: str) -> dict[str, Any]:
        """The capabilities the running call requires, once the platform confirmed ``user`` may make it.

        Raises (so the check denies) when the call cannot be identified or the platform does not confirm.
        """
        name, arguments = self._current_call()
        required = self._rpc.get_allowed(name)
        target = f"{self.core.identity}.{name}"
        try:
            confirmed = self._rpc.call(AUTH, "check_rpc_authorization", identity=user, method_name=target,
                                       method_args=arguments).get(timeout=FETCH_TIMEOUT)
        except Exception as exc:
            _log.warning("refused %s to %r: %s did not confirm it (%s)", target, user, AUTH, exc)
            raise
        if not confirmed:
            _log.warning("refused %s to %r: %s answered %r", target, user, AUTH, confirmed)
            raise ValueError(f"{AUTH} did not confirm the call (answered {confirmed!r})")
        return {capability: None for capability in required}

    def _current_call(self) -> tuple[str, dict[str, Any]]:
        """The method name and the arguments by name of the single request being served."""
        message = self._rpc.context.vip_message
        frames = list(message.args) if message is not None else []
        if len(frames) != 1:
            raise ValueError("only a single request can be checked with the platform, not a batch")
        obj = json.loads(frames[0])
        if not isinstance(obj, Mapping):
            raise ValueError("only a single request can be checked with the platform, not a batch")
        request = parse_request(obj)
        method = self._rpc.exports.get(request.method)
        if method is None:
            raise ValueError(f"{request.method!r} is not an exported method")
        bound = inspect.signature(method).bind(*request.args, **request.kwargs)
        bound.apply_defaults()
        return request.method, dict(bound.arguments)

    def _fetch(self) -> dict[str, dict[str, Any]]:
        with self._lock:  # one fetch for many concurrent checks
            if self._table is None:
                if not self._published and self.core.identity not in PROCESS_IDENTITIES:
                    # platform.auth shows an agent of other users only the capabilities its methods
                    # require: report them first, even when a call comes before the delayed report
                    self._publish_authorizations()
                raw = self._rpc.call(AUTH, "get_user_to_capabilities").get(timeout=FETCH_TIMEOUT)
                self._table = self._normalize_table(raw)
            return self._table

    @staticmethod
    def _normalize_table(raw: Any) -> dict[str, dict[str, Any]]:
        if not isinstance(raw, Mapping):
            raise ValueError(f"{AUTH} sent a capability table that is not an object")
        return {str(user): normalize_capabilities(caps) for user, caps in raw.items()}

    def update(self, user_to_capabilities: Mapping[str, Any]) -> None:
        """RPC ``auth.update``: replace the capability table (only ``platform.auth`` may)."""
        message = self._rpc.context.vip_message
        if message is not None and message.peer != AUTH:
            raise Unauthorized(
                UNAUTHORIZED,
                "unauthorized",
                {"detail": f"auth.update is accepted from {AUTH} only, not {message.peer!r}"},
            )
        self._table = self._normalize_table(user_to_capabilities)

    def on_disconnected(self) -> None:
        self._table = None  # the platform may come back with other rules
        self._published = False
        self._per_call = False

    # ------------------------------------------------------------------ method authorizations

    def get_rpc_authorizations(self, method_name: str) -> list[str]:
        """The capabilities required by exported ``method_name``."""
        return self._rpc.get_allowed(method_name)

    def get_all_rpc_authorizations(self) -> dict[str, list[str]]:
        """``{method: [capabilities]}`` for every restricted method."""
        return self._rpc.allowed_methods()

    def set_rpc_authorizations(self, method_name: str, capabilities: Iterable[str]) -> None:
        """Replace the capabilities ``method_name`` requires."""
        if method_name not in self._rpc.exports:
            raise ValueError(f"{method_name!r} is not an exported method")
        self._rpc.set_allowed(method_name, capabilities)

    def set_multiple_rpc_authorizations(self, rpc_authorizations: Mapping[str, Iterable[str]]) -> None:
        """Apply ``{method: [capabilities]}``."""
        for method_name, capabilities in rpc_authorizations.items():
            self.set_rpc_authorizations(method_name, capabilities)

    def on_start(self) -> None:
        if self.core.identity not in PROCESS_IDENTITIES:
            self.core.spawn_later(1.0, self._publish_authorizations)

    def _publish_authorizations(self) -> None:
        """Tell ``platform.auth`` what our methods require; apply the overrides it answers with."""
        self._published = True
        try:
            overrides = self._rpc.call(
                AUTH, "update_id_rpc_authorizations", self.core.identity, self._rpc.allowed_methods()
            ).get(timeout=FETCH_TIMEOUT)
        except Exception as exc:  # optional service call: the platform may not offer it
            _log.debug("rpc authorizations not sent to %s: %s", AUTH, exc)
            return
        if isinstance(overrides, Mapping):
            for method_name, capabilities in overrides.items():
                if method_name in self._rpc.exports and isinstance(capabilities, (list, tuple)):
                    self._rpc.set_allowed(method_name, capabilities)
