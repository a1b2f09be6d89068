"""One installed agent's directory, ``$VOLTTRON_HOME/agents/<identity>/`` (docs/protocol.md §5.5).

::

    agents/<identity>/
        UUID            the agent's uuid4 (every command accepts it, a unique prefix, or the identity)
        NAME            the distribution that provides its code (shared by all its instances)
        VERSION         the version of that distribution when it was installed
        config          the text given with --agent-config (YAML or JSON), passed as AGENT_CONFIG
        data/           the agent's only writable place, kept across reinstall and upgrade
        keystore.json   its CURVE key pair, mode 0600
        TAG             an optional label, at most 64 characters
        AUTOSTART       the start priority "00".."99" when the agent is enabled
        USER_ID         in secure mode, the system user the agent runs as (see ``agent_users``)

Every file is written with :func:`~volttron.utils.files.atomic_write`.
"""

from __future__ import annotations

import json
import uuid as uuid_module
from dataclasses import dataclass
from pathlib import Path

from volttron.server.aip.errors import AIPError, InvalidIdentityError
from volttron.utils import identities
from volttron.utils.config import parse_config
from volttron.utils.errors import ConfigError, IdentityError
from volttron.utils.files import atomic_write
from volttron.utils.keys import KeyPair
from volttron.utils.keystore import KeyStore

MAX_TAG_LENGTH = 64
MAX_IDENTITY_LENGTH = identities.MAX_AGENT_IDENTITY_LENGTH
DEFAULT_PRIORITY = "50"
DATA_DIR = "data"
KEYSTORE = "keystore.json"
USER_FILE = "USER_ID"


def check_agent_identity(identity: str) -> str:
    """``identity`` when it can name an agent directory, else :class:`InvalidIdentityError`.

    The one rule for agent identities (:func:`volttron.utils.identities.check_agent_identity`: letters,
    digits, ``_``, ``.``, ``-``, at most 200 characters, not starting with ``.``, which the AIP's own
    work folders do), shared with the config store and the auth service.
    """
    try:
        return identities.check_agent_identity(identity)
    except IdentityError as exc:
        raise InvalidIdentityError(str(exc)) from None


def check_tag(tag: str | None) -> str | None:
    """``tag`` when it is usable (one line, at most 64 characters); None or empty means no tag."""
    if tag is None or tag == "":
        return None
    if not isinstance(tag, str) or "\n" in tag or "\r" in tag:
        raise AIPError("a tag is one line of text")
    if len(tag) > MAX_TAG_LENGTH:
        raise AIPError(f"a tag is at most {MAX_TAG_LENGTH} characters; this one has {len(tag)}")
    return tag


def check_priority(priority: str | int | None) -> str | None:
    """The ``AUTOSTART`` form ``"NN"`` of a priority 0..99, or None (disabled)."""
    if priority is None:
        return None
    text = str(priority).strip()
    if not text.isdigit() or not 0 <= int(text) <= 99:
        raise AIPError(f"priority must be a number from 0 to 99, not {priority!r}")
    return f"{int(text):02d}"


def check_config_text(text: str, source: str = "--agent-config") -> str:
    """``text`` when it parses as an agent configuration (YAML or JSON with comments)."""
    try:
        parse_config(text, source)
    except ConfigError as exc:
        raise AIPError(f"the agent configuration cannot be read: {exc}") from None
    return text


@dataclass(frozen=True)
class AgentRecord:
    """What ``list`` shows of an installed agent (docs/protocol.md §3.3 ``list_agents`` shape, plus more)."""

    uuid: str
    identity: str
    name: str
    version: str | None
    tag: str | None
    priority: str | None

    def as_list_entry(self) -> dict[str, str | None]:
        """The control service's ``list_agents`` row: ``{"name", "uuid", "tag", "priority", "identity"}``."""
        return {
            "name": self.name,
            "uuid": self.uuid,
            "tag": self.tag,
            "priority": self.priority,
            "identity": self.identity,
        }


class AgentDirectory:
    """Read and change one agent's directory. The identity is the directory's name."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    @property
    def identity(self) -> str:
        """The agent's VIP identity (the directory name)."""
        return self.path.name

    @classmethod
    def populate(
        cls,
        path: Path | str,
        *,
        name: str,
        version: str | None,
        keys: KeyPair | None = None,
        agent_uuid: str | None = None,
        config: str | None = None,
        tag: str | None = None,
        priority: str | None = None,
    ) -> AgentDirectory:
        """Write a fresh agent directory at ``path`` (normally a work folder renamed into place later).

        A new uuid and a new key pair are made unless given (a reinstall keeps both).
        """
        directory = cls(path)
        directory.path.mkdir(parents=True, exist_ok=True)
        (directory.path / DATA_DIR).mkdir(exist_ok=True)
        directory._write("UUID", agent_uuid or str(uuid_module.uuid4()))
        directory._write("NAME", name)
        if version:
            directory._write("VERSION", version)
        if keys is None:
            KeyStore.generate(directory.keystore_path)
        else:
            directory._write_keys(keys)
        if config is not None:
            directory.write_config(config)
        directory.set_tag(tag)
        directory.set_priority(priority)
        return directory

    # ----- reading

    @property
    def uuid(self) -> str:
        """The agent's uuid; :class:`AIPError` when the directory has none (not an agent)."""
        value = self._read("UUID")
        if not value:
            raise AIPError(f"{self.path} has no UUID file: not an installed agent")
        return value

    @property
    def name(self) -> str:
        """The distribution name of the agent's code."""
        return self._read("NAME") or ""

    @property
    def version(self) -> str | None:
        """The distribution version recorded at install time."""
        return self._read("VERSION")

    @property
    def tag(self) -> str | None:
        """The tag, or None."""
        return self._read("TAG")

    @property
    def priority(self) -> str | None:
        """The autostart priority ``"NN"``, or None when the agent is not enabled."""
        return self._read("AUTOSTART")

    @property
    def user(self) -> str | None:
        """The system user the agent runs as in secure mode (``USER_ID``), or None."""
        return self._read(USER_FILE)

    @property
    def config_path(self) -> Path | None:
        """The ``config`` file, when the agent has one."""
        path = self.path / "config"
        return path if path.is_file() else None

    @property
    def data_dir(self) -> Path:
        """The agent's writable data folder."""
        return self.path / DATA_DIR

    @property
    def keystore_path(self) -> Path:
        """The agent's ``keystore.json``."""
        return self.path / KEYSTORE

    def keys(self) -> KeyPair:
        """The agent's key pair (read from ``keystore.json``)."""
        return KeyStore(self.keystore_path).keypair

    def is_agent(self) -> bool:
        """True when the directory looks installed (it has a UUID file)."""
        return (self.path / "UUID").is_file()

    def record(self) -> AgentRecord:
        """Everything :class:`AgentRecord` holds, read now."""
        return AgentRecord(
            uuid=self.uuid,
            identity=self.identity,
            name=self.name,
            version=self.version,
            tag=self.tag,
            priority=self.priority,
        )

    # ----- changing

    def write_config(self, text: str) -> None:
        """Store the agent's configuration text (checked to parse)."""
        self._write("config", check_config_text(text), raw=True)

    def set_tag(self, tag: str | None) -> None:
        """Write or (None) remove the ``TAG`` file."""
        self._write_or_remove("TAG", check_tag(tag))

    def set_priority(self, priority: str | int | None) -> None:
        """Enable with a priority 0..99, or (None) disable: writes or removes ``AUTOSTART``."""
        self._write_or_remove("AUTOSTART", check_priority(priority))

    def set_user(self, user: str | None) -> None:
        """Record (or with None forget) the agent's system user in ``USER_ID``."""
        self._write_or_remove(USER_FILE, user)

    # ----- files

    def _read(self, name: str) -> str | None:
        try:
            text = (self.path / name).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return text or None

    def _write(self, name: str, value: str, raw: bool = False) -> None:
        atomic_write(self.path / name, value if raw else value + "\n", 0o644)

    def _write_or_remove(self, name: str, value: str | None) -> None:
        if value is None:
            (self.path / name).unlink(missing_ok=True)
        else:
            self._write(name, value)

    def _write_keys(self, keys: KeyPair) -> None:
        atomic_write(self.keystore_path, json.dumps(keys.as_dict(), indent=2) + "\n", 0o600)

    def __repr__(self) -> str:
        return f"AgentDirectory({str(self.path)!r})"
