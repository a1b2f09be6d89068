"""Where an agent's address and CURVE keys come from (docs/protocol.md §1.1, §4.2, §8.3).

Explicit values win, then the address's query parameters, then files in ``$VOLTTRON_HOME``: the
key pair from ``agents/<identity>/keystore.json`` (an installed agent) or
``keystores/<identity>/keystore.json`` (services, tools, agents run by hand), and the server key
from ``known_hosts``. Nothing is generated here: a missing key store stays missing, so the caller
can say so instead of connecting with keys the platform has never seen.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from volttron.client.messagebus.address import parse_vip_address
from volttron.utils.home import (
    agents_dir,
    get_home,
    identity_keystore_path,
    known_hosts_path,
    local_vip_address,
)


@dataclass(frozen=True)
class Credentials:
    """The address to connect to and the CURVE keys to use (None where unknown)."""

    address: str
    publickey: str | None = None
    secretkey: str | None = None
    serverkey: str | None = None
    keystore: Path | None = None
    """The key store file the key pair was read from, if any."""

    @property
    def complete(self) -> bool:
        """True when all three keys are known."""
        return bool(self.publickey and self.secretkey and self.serverkey)

    def missing(self) -> list[str]:
        """Names of the keys that are not known."""
        names = {"publickey": self.publickey, "secretkey": self.secretkey, "serverkey": self.serverkey}
        return [name for name, value in names.items() if not value]


def default_address(
    volttron_home: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> str:
    """``$VOLTTRON_VIP_ADDR`` if set, else the platform's local IPC address."""
    env = os.environ if env is None else env
    explicit = env.get("VOLTTRON_VIP_ADDR")
    if explicit:
        return explicit
    return local_vip_address(Path(volttron_home) if volttron_home else get_home(env))


def keystore_candidates(identity: str, volttron_home: str | os.PathLike[str]) -> list[Path]:
    """Key store files tried for ``identity``, in order."""
    home = Path(volttron_home)
    return [agents_dir(home) / identity / "keystore.json", identity_keystore_path(identity, home)]


def resolve_credentials(
    identity: str,
    address: str | None = None,
    publickey: str | None = None,
    secretkey: str | None = None,
    serverkey: str | None = None,
    volttron_home: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Credentials:
    """Fill in the address and keys ``identity`` needs; see the module docstring for the order.

    Keys are returned in their 43-character form; a malformed one raises
    :class:`~volttron.utils.errors.KeyFormatError`.
    """
    env = os.environ if env is None else env
    home = Path(volttron_home) if volttron_home else get_home(env)
    address = address or default_address(home, env)
    parsed = parse_vip_address(address)
    publickey = publickey or parsed.publickey
    secretkey = secretkey or parsed.secretkey
    serverkey = serverkey or parsed.serverkey
    keystore = None
    if parsed.scheme == "inproc":
        return Credentials(parsed.base)  # in-process services do not use CURVE
    # The key store modules load cryptography (7 MB): only touched when a key is missing.
    if not (publickey and secretkey):
        for candidate in keystore_candidates(identity, home):
            if candidate.is_file():
                from volttron.utils.keystore import KeyStore

                store = KeyStore(candidate)
                publickey, secretkey, keystore = store.public, store.secret, candidate
                break
    if not serverkey and known_hosts_path(home).is_file():
        from volttron.utils.keystore import KnownHosts

        serverkey = KnownHosts(known_hosts_path(home)).serverkey(parsed.base)
    return Credentials(
        parsed.base, _normalize(publickey), _normalize(secretkey), _normalize(serverkey), keystore
    )


_BASE64URL = re.compile(r"[A-Za-z0-9_-]{43}")


def _normalize(key: str | None) -> str | None:
    """The 43-character form of a key (the usual form passes through without loading cryptography)."""
    if not key:
        return None
    if _BASE64URL.fullmatch(key):
        return key
    from volttron.utils.keys import normalize_key

    return normalize_key(key)
