"""Protected topics: publishing to them needs capabilities (docs/protocol.md §2.6).

``$VOLTTRON_HOME/protected_topics.json``::

    {"write-protect": [{"topic": "devices/secure", "capabilities": ["can_publish_secure"]},
                       {"topic": "/^alerts/.*/", "capabilities": ["alerting"]}]}

A topic is looked up as an exact topic first, then by the longest literal entry it starts with,
then by the first ``/regex/`` entry matching its start. The publisher must hold every listed
capability. The file is re-read when it changes; one that does not parse is reported and left in
place, and the last good list stays in force (the platform refuses to start if the file is bad at
start-up). Unlike a corrupt config store, it is never moved aside: a missing file means "nothing is
protected" to every reader, so moving it would lift the protection.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from volttron.utils.config import strip_comments
from volttron.utils.errors import ConfigError
from volttron.utils.files import FileSignature, file_signature

_log = logging.getLogger(__name__)

PROTECTED_TOPICS_FILE = "protected_topics.json"


def _parse(data: Any, source: str) -> tuple[dict[str, list[str]], list[tuple[re.Pattern[str], list[str]]]]:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a JSON object with a 'write-protect' list")
    rules = data.get("write-protect", [])
    if not isinstance(rules, list):
        raise ConfigError(f"{source}: 'write-protect' must be a list")
    literal: dict[str, list[str]] = {}
    regexes: list[tuple[re.Pattern[str], list[str]]] = []
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict) or not isinstance(rule.get("topic"), str):
            raise ConfigError(f"{source}: write-protect entry {i} needs a text 'topic'")
        caps = rule.get("capabilities", [])
        if isinstance(caps, str):
            caps = [caps]
        if isinstance(caps, dict):
            caps = list(caps)
        if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
            raise ConfigError(f"{source}: write-protect entry {i} 'capabilities' must be a list of names")
        topic = rule["topic"]
        if len(topic) >= 2 and topic[0] == "/" and topic[-1] == "/":
            try:
                regexes.append((re.compile(topic[1:-1]), caps))
            except re.error as exc:
                raise ConfigError(f"{source}: write-protect entry {i} has a bad regex: {exc}") from None
        else:
            literal[topic] = caps
    return literal, regexes


class ProtectedTopics:
    """The write-protected topics and the capabilities each needs."""

    def __init__(self, path: str | os.PathLike[str] | None = None, check_interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path) if path is not None else None
        self._check_interval = check_interval
        self._clock = clock
        self._checked_at = clock()
        self._literal: dict[str, list[str]] = {}
        self._prefixes: list[str] = []  # literal topics, longest first
        self._regexes: list[tuple[re.Pattern[str], list[str]]] = []
        self._signature: tuple[int, int, int] | None = None
        if self.path is not None:
            self._signature = self._stat()
            self._load(strict=True)

    def __bool__(self) -> bool:
        return bool(self._literal or self._regexes)

    def replace(self, document: Mapping[str, Any], source: str = "protected_update") -> None:
        """Use ``document`` (the file's JSON form) from now on; :class:`ConfigError` if malformed."""
        literal, regexes = _parse(document, source)
        self._literal = literal
        self._prefixes = sorted(literal, key=len, reverse=True)
        self._regexes = regexes

    def refresh(self) -> None:
        """Re-read the file if it changed on disk (looking at most once per ``check_interval``)."""
        if self.path is None:
            return
        now = self._clock()
        if now - self._checked_at < self._check_interval:
            return
        self._checked_at = now
        signature = self._stat()
        if signature != self._signature:
            self._signature = signature
            self._load(strict=False)

    def entries(self) -> tuple[dict[str, list[str]], list[tuple[str, list[str]]]]:
        """The literal topics and the ``/regex/`` entries (pattern text, in order) with their capabilities."""
        return dict(self._literal), [(regex.pattern, caps) for regex, caps in self._regexes]

    def required(self, topic: str) -> list[str] | None:
        """Capabilities needed to publish to ``topic``, or None when it is not protected."""
        caps = self._literal.get(topic)
        if caps is not None:
            return caps
        for prefix in self._prefixes:
            if topic.startswith(prefix):
                return self._literal[prefix]
        for regex, caps in self._regexes:
            if regex.match(topic):
                return caps
        return None

    def _stat(self) -> FileSignature:
        assert self.path is not None
        return file_signature(self.path)

    def _load(self, strict: bool) -> None:
        assert self.path is not None
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self.replace({}, str(self.path))
            return
        except (OSError, UnicodeDecodeError) as exc:
            problem = f"cannot read {self.path}: {exc}"
        else:
            try:
                data = json.loads(strip_comments(text)) if text.strip() else {}
                self.replace(data, str(self.path))
                _log.info("protected topics: %d literal, %d regex", len(self._literal), len(self._regexes))
                return
            except (ValueError, RecursionError) as exc:
                problem = f"{self.path} is not valid: {exc}"
        if strict:
            raise ConfigError(f"{problem}; fix it (or remove it to protect no topic) and start again")
        # The file stays where it is: moving it aside would read as "no protected topics" to every
        # other reader of the home, lifting the protection a bad edit was probably meant to change.
        _log.error("protected topics not changed, the last good list stays in force: %s", problem)


def is_allowed(required: Collection[str], capabilities: Mapping[str, Any] | None) -> bool:
    """Whether a publisher holding ``capabilities`` has every ``required`` one."""
    held = capabilities or {}
    return all(name in held for name in required)


def read_protected_topics(path: Path) -> dict[str, Any]:
    """The protected-topics document in ``path`` (empty when missing); :class:`ConfigError` if invalid."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {"write-protect": []}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    try:
        document = json.loads(strip_comments(text)) if text.strip() else {"write-protect": []}
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    ProtectedTopics().replace(document, str(path))  # validates; ConfigError says what is wrong
    return document
