"""What the AIP tells the rest of the platform when agents come and go, and the default telling.

:class:`AgentHooks` is the pair of callbacks the facade calls: after an agent's directory and keys
exist (but before the install is final, so a failure can take it back) and after an agent is
removed. The auth service will provide its own; until then :class:`AuthFileHooks` edits
``$VOLTTRON_HOME/auth.json`` directly, adding the allow entry the published platform gives an installed agent
(§5.4 step 4, §8.4)::

    {"credentials": <publickey>, "user_id": <identity>, "identity": <identity>,
     "capabilities": {"edit_config_store": {"identity": <identity>}}, ...}

The file is rewritten atomically with mode 0600 while holding ``auth.json.lock`` (an ``flock``),
which whoever else writes ``auth.json`` should hold too. A file that does not parse is reported,
never replaced.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from volttron.server.aip.errors import AIPError
from volttron.utils.config import strip_comments
from volttron.utils.files import FileLock, atomic_write
from volttron.utils.home import auth_file_path

AUTH_FILE_MODE = 0o600
AUTH_FILE_VERSION = {"major": 1, "minor": 4}
INSTALL_COMMENT = "Added by the platform when the agent was installed"
_LOCK_TIMEOUT = 30.0


class AgentHooks(Protocol):
    """Callbacks for agents being installed and removed (the auth service implements them later)."""

    def on_agent_installed(self, identity: str, publickey: str) -> None:
        """An agent with this identity and public key is being installed (may be a reinstall)."""

    def on_agent_removed(self, identity: str) -> None:
        """The agent with this identity was removed (or its install was rolled back)."""


def agent_auth_entry(identity: str, publickey: str) -> dict[str, Any]:
    """The allow entry of an installed agent, fields in the order of docs/protocol.md §8.4."""
    return {
        "domain": None,
        "address": None,
        "mechanism": "CURVE",
        "credentials": publickey,
        "groups": [],
        "roles": [],
        "capabilities": {"edit_config_store": {"identity": identity}},
        "rpc_method_authorizations": {},
        "comments": INSTALL_COMMENT,
        "user_id": identity,
        "identity": identity,
        "enabled": True,
    }


class AuthFileHooks:
    """The default :class:`AgentHooks`: keep one allow entry per installed agent in ``auth.json``."""

    def __init__(self, volttron_home: Path | str) -> None:
        self.path = auth_file_path(volttron_home)

    def on_agent_installed(self, identity: str, publickey: str) -> None:
        """Add (or replace) the agent's allow entry."""
        with self._locked():
            data = self._read()
            data["allow"] = [e for e in data["allow"] if not _belongs_to(e, identity)]
            data["allow"].append(agent_auth_entry(identity, publickey))
            self._write(data)

    def on_agent_removed(self, identity: str) -> None:
        """Remove the agent's allow entries (those whose ``user_id`` is the identity)."""
        with self._locked():
            if not self.path.exists():
                return
            data = self._read()
            kept = [e for e in data["allow"] if not _belongs_to(e, identity)]
            if len(kept) != len(data["allow"]):
                data["allow"] = kept
                self._write(data)

    def entries_for(self, identity: str) -> list[dict[str, Any]]:
        """The allow entries whose ``user_id`` is ``identity`` (for status and tests)."""
        if not self.path.exists():
            return []
        return [e for e in self._read()["allow"] if _belongs_to(e, identity)]

    def _locked(self) -> FileLock:
        lock = FileLock(self.path.with_name(self.path.name + ".lock"))
        if not lock.acquire(_LOCK_TIMEOUT):
            raise AIPError(f"{self.path} stayed locked for {_LOCK_TIMEOUT:g} s; cannot update agent access")
        return lock

    def _read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"allow": [], "deny": [], "groups": {}, "roles": {}, "version": dict(AUTH_FILE_VERSION)}
        except (OSError, UnicodeDecodeError) as exc:
            raise AIPError(f"cannot read {self.path}: {exc}") from exc
        try:
            data = json.loads(strip_comments(text)) if text.strip() else {}
        except ValueError as exc:
            raise AIPError(f"{self.path} is not valid JSON ({exc}); fix it, then try again") from None
        if not isinstance(data, dict) or not isinstance(data.get("allow", []), list):
            raise AIPError(f"{self.path} does not hold an auth file object with an 'allow' list")
        data.setdefault("allow", [])
        return data

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(data, indent=2) + "\n", AUTH_FILE_MODE)


def _belongs_to(entry: Any, identity: str) -> bool:
    return isinstance(entry, dict) and entry.get("user_id") == identity
