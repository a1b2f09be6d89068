"""Capability checks for ``@RPC.allow`` (docs/protocol.md §2.5, §8.4).

A method may require capabilities; a caller (its user id) holds capabilities, each either plain
(``{"edit_config_store": null}``) or restricted to argument values
(``{"edit_config_store": {"identity": "listener"}}``, or ``"/regex/"`` for a pattern the whole value
must match). :func:`check_capabilities` raises :class:`~volttron.utils.jsonrpc.Unauthorized` on any
doubt: a missing capability, an argument that does not match, a restriction it cannot evaluate, or
a capability table it cannot get. An empty capability set holds nothing and so is denied; a method
that requires an empty list (``@RPC.allow([])``) is closed to everyone. ``{""}`` means "no
restriction" (docs/protocol.md §2.5) and is never checked.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any

from volttron.utils.jsonrpc import UNAUTHORIZED, Unauthorized

CapabilitySource = Callable[[str], Mapping[str, Any]]


def unauthorized(detail: str) -> Unauthorized:
    """The JSON-RPC -32001 error with ``detail``."""
    return Unauthorized(UNAUTHORIZED, "unauthorized", {"detail": detail})


def check_capabilities(
    name: str,
    method: Callable[..., Any],
    args: list[Any],
    kwargs: dict[str, Any],
    required: set[str],
    source: CapabilitySource | None,
    user: str,
) -> None:
    """Raise :class:`Unauthorized` unless ``user`` may call ``method`` (exported as ``name``) so.

    An empty ``required`` set (``@RPC.allow([])``) denies every caller.
    """
    if not required:
        raise unauthorized(f"method {name!r} is closed: it requires an empty list of capabilities")
    if source is None:
        raise unauthorized(
            f"method {name!r} requires {sorted(required)} and no capability table is available"
        )
    try:
        held = source(user)
    except Exception as exc:  # any failure to learn the capabilities denies
        raise unauthorized(
            f"method {name!r} requires {sorted(required)}; capabilities of {user!r} unavailable: {exc}"
        ) from exc
    missing = required - set(held)
    if missing:
        raise unauthorized(f"user {user!r} lacks capabilities {sorted(missing)} required by {name!r}")
    for capability in required:
        restriction = held.get(capability)
        if isinstance(restriction, Mapping) and restriction:
            _check_restriction(name, method, args, kwargs, capability, restriction, user)


def _is_pattern(value: Any) -> bool:
    return isinstance(value, str) and len(value) > 1 and value.startswith("/") and value.endswith("/")


def _check_restriction(
    name: str,
    method: Callable[..., Any],
    args: list[Any],
    kwargs: dict[str, Any],
    capability: str,
    restriction: Mapping[str, Any],
    user: str,
) -> None:
    try:
        bound = inspect.signature(method).bind(*args, **kwargs)
    except (TypeError, ValueError) as exc:
        raise unauthorized(f"cannot check {capability!r} on {name!r}: {exc}") from exc
    bound.apply_defaults()
    for param, expected in restriction.items():
        if param not in bound.arguments:
            raise unauthorized(f"{capability!r} restricts {param!r}, which {name!r} does not take")
        actual = bound.arguments[param]
        if _is_pattern(expected):
            try:
                matched = isinstance(actual, str) and re.fullmatch(expected[1:-1], actual) is not None
            except re.error as exc:
                raise unauthorized(f"{capability!r} has an invalid pattern {expected}: {exc}") from exc
            if not matched:
                raise unauthorized(f"user {user!r} may call {name!r} only with {param} matching {expected}")
        elif actual != expected:
            raise unauthorized(f"user {user!r} may call {name!r} only with {param}={expected!r}")
