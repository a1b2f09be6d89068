"""Changes to an ``auth.json`` document, as the auth service's RPC methods make them (docs/protocol.md §3.4).

Plain functions over an :class:`~volttron.server.services.auth.authfile.AuthDocument`; the service
runs them inside :func:`~volttron.server.services.auth.authfile.edit_auth_file` so the file is read,
changed and written under its lock. Every refusal is an :class:`AuthEditError` whose message is one
line a user can act on (an unknown index, a duplicate user id, a key of the wrong length...).

Entries are addressed by their position in the ``allow`` list (or the ``deny`` list with
``is_allow=False``), as ``vctl auth list`` shows them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from volttron.server.services.auth.authfile import AuthDocument, AuthEntry, is_regex
from volttron.utils.errors import ConfigError, IdentityError, VolttronError
from volttron.utils.identities import check_agent_identity, is_remote_principal

NO_RESTRICTION = [""]
"""The method authorization that lifts every restriction (docs/protocol.md §2.5)."""

MAX_METHODS_PER_ENTRY = 1000
"""Methods with recorded authorizations in one entry (an agent reports its restricted methods)."""
MAX_CAPABILITIES_PER_METHOD = 32
"""Capabilities one method may require."""
MAX_NAME_LENGTH = 200
"""Characters of a method or capability name."""
MAX_ENTRY_BYTES = 64 * 1024
"""Bytes of one entry as JSON: what one agent can make every reader of ``auth.json`` parse."""


class AuthEditError(VolttronError, ValueError):
    """A change to ``auth.json`` that cannot be made; the message says why."""


def entry_from_request(data: Any) -> AuthEntry:
    """An :class:`AuthEntry` from the JSON form a caller sent; :class:`AuthEditError` if invalid."""
    if isinstance(data, AuthEntry):
        return data
    if not isinstance(data, Mapping):
        raise AuthEditError(f"an auth entry is a JSON object, not {type(data).__name__}")
    known = set(AuthEntry().to_dict())
    unknown = sorted(set(data) - known)
    if unknown:
        raise AuthEditError(f"unknown auth entry fields: {', '.join(unknown)}")
    if (data.get("credentials") is None and str(data.get("mechanism") or "CURVE").upper() == "CURVE"
            and not is_remote_principal(str(data.get("user_id") or ""))):
        # (a linked platform's agent, B:ops.agent, holds capabilities here and never connects: no key)
        raise AuthEditError("a CURVE entry needs credentials (a 43-character public key or a /regex/)")
    if data.get("identity") is not None and not is_regex(data["identity"]):
        # a /regex/ identity names no agent: it binds a linked platform's key to its link's names
        try:
            check_agent_identity(data["identity"])
        except IdentityError as exc:
            raise AuthEditError(str(exc)) from None
    try:
        entry = AuthEntry.from_dict(dict(data))
    except ConfigError as exc:
        raise AuthEditError(str(exc)) from None
    check_entry_size(entry)
    return entry


def check_entry_size(entry: AuthEntry) -> None:
    """:class:`AuthEditError` when ``entry`` exceeds the bounds above (count, name length, bytes)."""
    methods = entry.rpc_method_authorizations
    if len(methods) > MAX_METHODS_PER_ENTRY:
        raise AuthEditError(f"too many rpc_method_authorizations: {len(methods)} methods, at most "
                            f"{MAX_METHODS_PER_ENTRY} per entry")
    for method, capabilities in methods.items():
        _check_name(method, "method name")
        if len(capabilities) > MAX_CAPABILITIES_PER_METHOD:
            raise AuthEditError(f"method {method[:40]!r} requires {len(capabilities)} capabilities, at most "
                                f"{MAX_CAPABILITIES_PER_METHOD}")
        for capability in capabilities:
            _check_name(capability, "capability name")
    for capability in entry.capabilities:
        _check_name(capability, "capability name")
    size = len(json.dumps(entry.to_dict()))
    if size > MAX_ENTRY_BYTES:
        raise AuthEditError(f"the auth entry of {entry.user_id[:40]!r} would be {size} bytes, at most "
                            f"{MAX_ENTRY_BYTES}")


def _check_name(name: str, what: str) -> None:
    if len(name) > MAX_NAME_LENGTH:
        raise AuthEditError(f"a {what} is at most {MAX_NAME_LENGTH} characters: {name[:40]!r}... "
                            f"has {len(name)}")


def _entries(document: AuthDocument, is_allow: bool) -> list[AuthEntry]:
    return document.allow if is_allow else document.deny


def _kind(is_allow: bool) -> str:
    return "allow" if is_allow else "deny"


def _check_index(document: AuthDocument, index: Any, is_allow: bool) -> int:
    entries = _entries(document, is_allow)
    if isinstance(index, bool) or not isinstance(index, int):
        raise AuthEditError(f"an entry index is a whole number, not {index!r}")
    if not 0 <= index < len(entries):
        last = f"0-{len(entries) - 1}" if entries else "none: the list is empty"
        raise AuthEditError(f"no {_kind(is_allow)} entry at index {index} (valid: {last})")
    return index


def _same_connection(a: AuthEntry, b: AuthEntry) -> bool:
    def key(e: AuthEntry) -> tuple[Any, ...]:
        return (e.domain, e.address, e.mechanism, e.credentials)

    return key(a) == key(b)


def _check_unique(document: AuthDocument, entry: AuthEntry, is_allow: bool, skip: int | None = None) -> None:
    for i, other in enumerate(_entries(document, is_allow)):
        if i == skip:
            continue
        if other.user_id == entry.user_id:
            raise AuthEditError(f"the {_kind(is_allow)} entry at index {i} already has the user_id "
                                f"{entry.user_id!r}")
        if _same_connection(other, entry):
            raise AuthEditError(f"the {_kind(is_allow)} entry at index {i} already describes these "
                                "credentials; update it instead")


def add_entry(document: AuthDocument, entry: AuthEntry, is_allow: bool = True,
              overwrite: bool = False) -> int:
    """Append ``entry``, returning its index; ``overwrite`` replaces the entry for the same credentials."""
    entries = _entries(document, is_allow)
    if overwrite:
        for i, other in enumerate(entries):
            if _same_connection(other, entry):
                _check_unique(document, entry, is_allow, skip=i)
                entries[i] = entry
                return i
    _check_unique(document, entry, is_allow)
    entries.append(entry)
    return len(entries) - 1


def update_entry(document: AuthDocument, index: Any, entry: AuthEntry, is_allow: bool = True) -> None:
    """Replace the entry at ``index``."""
    position = _check_index(document, index, is_allow)
    _check_unique(document, entry, is_allow, skip=position)
    _entries(document, is_allow)[position] = entry


def remove_entries(document: AuthDocument, indices: Iterable[Any], is_allow: bool = True) -> list[AuthEntry]:
    """Remove the entries at ``indices`` (all checked before any is removed); returns them."""
    positions = sorted({_check_index(document, i, is_allow) for i in indices}, reverse=True)
    if not positions:
        raise AuthEditError("no entry index given")
    entries = _entries(document, is_allow)
    return [entries.pop(i) for i in positions][::-1]


def find_by_credentials(document: AuthDocument, credentials: str, is_allow: bool = True) -> list[AuthEntry]:
    """The entries whose ``credentials`` are exactly ``credentials``."""
    return [e for e in _entries(document, is_allow) if e.credentials == credentials]


def remove_by_credentials(document: AuthDocument, credentials: str, is_allow: bool = True) -> int:
    """Remove the entries whose ``credentials`` are exactly ``credentials``; returns how many."""
    entries = _entries(document, is_allow)
    kept = [e for e in entries if e.credentials != credentials]
    removed = len(entries) - len(kept)
    entries[:] = kept
    return removed


def _name_lists(value: Any, what: str) -> dict[str, list[str]]:
    if not isinstance(value, Mapping):
        raise AuthEditError(f"{what} must map names to lists of names")
    result: dict[str, list[str]] = {}
    for name, members in value.items():
        if not isinstance(name, str) or not name:
            raise AuthEditError(f"{what} names must be non-empty text")
        if isinstance(members, str) or not isinstance(members, Iterable) or not all(
                isinstance(m, str) and m for m in members):
            raise AuthEditError(f"{what}[{name!r}] must be a list of non-empty names")
        result[name] = list(dict.fromkeys(members))
    return result


def set_groups(document: AuthDocument, groups: Any) -> None:
    """Replace the ``groups`` map (group -> roles)."""
    document.groups = _name_lists(groups, "groups")


def set_roles(document: AuthDocument, roles: Any) -> None:
    """Replace the ``roles`` map (role -> capabilities)."""
    document.roles = _name_lists(roles, "roles")


# -- RPC method authorizations ---------------------------------------------------------------------

def entry_for_identity(document: AuthDocument, identity: str) -> AuthEntry:
    """The allow entry of the agent ``identity`` (its ``identity`` field, else its ``user_id``)."""
    if not isinstance(identity, str) or not identity:
        raise AuthEditError("an agent identity is needed")
    for entry in document.allow:
        if entry.identity == identity:
            return entry
    for entry in document.allow:
        if entry.user_id == identity:
            return entry
    raise AuthEditError(f"no allow entry for the identity {identity!r}")


def _capability_names(capabilities: Any) -> list[str]:
    if isinstance(capabilities, str):
        capabilities = [capabilities]
    if not isinstance(capabilities, Iterable) or not all(isinstance(c, str) and c for c in capabilities):
        raise AuthEditError("capabilities must be a list of non-empty names")
    names = list(dict.fromkeys(capabilities))
    if not names:
        raise AuthEditError("no capability given")
    return names


def _method_name(method: Any) -> str:
    if not isinstance(method, str) or not method:
        raise AuthEditError("a method name is needed")
    return method


def add_rpc_authorizations(document: AuthDocument, identity: str, method: str, capabilities: Any,
                           in_code: list[str] | None = None) -> list[str]:
    """Require ``capabilities`` (in addition to those already required) to call ``identity``'s ``method``.

    ``in_code`` is what the agent's code requires, used when the entry holds nothing for the method
    yet (so the new capabilities add to those instead of replacing them). Returns the method's full
    list of required capabilities.
    """
    entry = entry_for_identity(document, identity)
    names = _capability_names(capabilities)
    recorded = entry.rpc_method_authorizations.get(_method_name(method))
    current = [c for c in (recorded if recorded is not None else in_code or []) if c]
    required = list(dict.fromkeys([*current, *names]))
    check_entry_size(replace(entry, rpc_method_authorizations={**entry.rpc_method_authorizations,
                                                                method: required}))
    entry.rpc_method_authorizations[method] = required
    return required


def delete_rpc_authorizations(document: AuthDocument, identity: str, method: str,
                              capabilities: Any) -> list[str]:
    """Stop requiring ``capabilities`` for ``identity``'s ``method``; returns what remains required.

    When none remain the method is recorded as ``[""]``: no restriction (docs/protocol.md §2.5).
    """
    entry = entry_for_identity(document, identity)
    names = _capability_names(capabilities)
    current = entry.rpc_method_authorizations.get(_method_name(method))
    if current is None:
        raise AuthEditError(f"{identity}.{method} has no recorded authorizations; see 'vctl rpc list'")
    unknown = [c for c in names if c not in current]
    if unknown:
        raise AuthEditError(f"{identity}.{method} does not require {', '.join(unknown)} "
                            f"(it requires {', '.join(c for c in current if c) or 'nothing'})")
    remaining = [c for c in current if c and c not in names]
    entry.rpc_method_authorizations[method] = remaining or list(NO_RESTRICTION)
    return entry.rpc_method_authorizations[method]


def merge_rpc_authorizations(document: AuthDocument, identity: str,
                             declared: Mapping[str, Any]) -> dict[str, list[str]] | None:
    """Record what ``identity``'s methods require, keeping what an administrator already set.

    ``declared`` is ``{method: [capabilities]}`` as the agent's code has it. A method already in the
    entry keeps the entry's list (the administrator's decision wins); new methods are added. Returns
    the entry's whole map, which the agent applies, or None when ``identity`` has no allow entry.
    """
    try:
        entry = entry_for_identity(document, identity)
    except AuthEditError:
        return None
    if not isinstance(declared, Mapping):
        raise AuthEditError("rpc_methods must map method names to lists of capabilities")
    if len(declared) > MAX_METHODS_PER_ENTRY:
        raise AuthEditError(f"too many rpc_method_authorizations: {len(declared)} methods, at most "
                            f"{MAX_METHODS_PER_ENTRY} per entry")
    merged = dict(entry.rpc_method_authorizations)
    for method, capabilities in declared.items():
        if not isinstance(capabilities, (list, tuple)) or not all(isinstance(c, str) for c in capabilities):
            raise AuthEditError(f"the capabilities of {str(method)[:40]!r} must be a list of names")
        merged.setdefault(str(method), list(capabilities))
    check_entry_size(replace(entry, rpc_method_authorizations=merged))  # all or nothing
    entry.rpc_method_authorizations = merged
    return {m: list(c) for m, c in merged.items()}
