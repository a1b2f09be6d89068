"""Key stores and the known-hosts file (docs/protocol.md §4.5, §8.3).

A :class:`KeyStore` is the JSON file ``{"public": ..., "secret": ...}`` (mode 0600) holding one
identity's CURVE key pair. It is created on first use, and never silently regenerated: a damaged key
store raises :class:`~volttron.utils.errors.CorruptFileError` and stays where it is, because a new
key would change who the platform or agent is.

:class:`KnownHosts` maps platform addresses to their server keys, so a client can connect to a
platform by address alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from volttron.utils.errors import ConfigError, CorruptFileError, KeyFormatError
from volttron.utils.files import read_json_file, write_json_file
from volttron.utils.keys import KeyPair, decode_key, encode_key, generate_keypair, public_from_secret

KEYSTORE_MODE = 0o600
KNOWN_HOSTS_MODE = 0o644


class KeyStore:
    """The CURVE key pair of one identity, stored in a JSON file.

    Reading :attr:`public`, :attr:`secret` or :attr:`keypair` loads the file, generating a new pair
    first when the file does not exist (parent directories are created).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._pair: KeyPair | None = None

    @classmethod
    def generate(cls, path: str | os.PathLike[str], *, overwrite: bool = False) -> KeyStore:
        """Write a new key pair to ``path`` and return its store.

        An existing file is replaced only with ``overwrite=True``; otherwise :class:`FileExistsError`.
        """
        store = cls(path)
        store._pair = generate_keypair()
        store.path.parent.mkdir(parents=True, exist_ok=True)
        write_json_file(store.path, store._pair.as_dict(), KEYSTORE_MODE, overwrite=overwrite)
        return store

    @property
    def keypair(self) -> KeyPair:
        """Both keys, loaded (or generated) on first access."""
        if self._pair is None:
            self._pair = self._load_or_create()
        return self._pair

    @property
    def public(self) -> str:
        """The public key, 43 characters of URL-safe base64."""
        return self.keypair.public

    @property
    def secret(self) -> str:
        """The secret key, 43 characters of URL-safe base64."""
        return self.keypair.secret

    def exists(self) -> bool:
        """True when the key store file exists (nothing is generated)."""
        return self.path.exists()

    def _load_or_create(self) -> KeyPair:
        if not self.path.exists():
            pair = generate_keypair()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                write_json_file(self.path, pair.as_dict(), KEYSTORE_MODE, overwrite=False)
            except FileExistsError:
                return self._load()  # another process created it first: its keys win
            return pair
        return self._load()

    def _load(self) -> KeyPair:
        data = read_json_file(self.path, expect=dict, move_corrupt=False)
        public, secret = data.get("public"), data.get("secret")
        if not isinstance(public, str) or not isinstance(secret, str):
            raise self._corrupt('needs text values "public" and "secret"')
        try:
            pair = KeyPair(public=encode_key(decode_key(public)), secret=encode_key(decode_key(secret)))
        except KeyFormatError as exc:
            raise self._corrupt(f"holds a malformed key ({exc})") from None
        if public_from_secret(pair.secret) != pair.public:
            raise self._corrupt("holds a public key that does not belong to its secret key")
        return pair

    def _corrupt(self, problem: str) -> CorruptFileError:
        return CorruptFileError(f"key store {self.path} {problem}; fix or remove it (removing it changes "
                                "this identity's keys)", path=str(self.path))

    def __repr__(self) -> str:
        return f"KeyStore({str(self.path)!r})"


def known_host_key(address: str) -> str:
    """The known_hosts key of a VIP address (docs/protocol.md §8.3).

    ``tcp://host:port`` gives ``host:port``; ``ipc://@/path`` (abstract namespace) gives ``@``;
    ``ipc:///path`` gives ``/path``; an address without ``://`` is read as ``//address``. Query
    parameters (``?serverkey=...``) are ignored.
    """
    if not isinstance(address, str) or not address.strip():
        raise ConfigError(f"a platform address is needed, got {address!r}")
    text = address.strip()
    if "://" not in text:
        text = "//" + text
    parts = urlsplit(text)
    key = parts.netloc or parts.path
    if not key:
        raise ConfigError(f"cannot read a host or path from the address {address!r}")
    return key


class KnownHosts:
    """The ``known_hosts`` file: a JSON object mapping :func:`known_host_key` of an address to a server key.

    Every call reads the file afresh (vctl may change it while the platform runs); changes are
    written atomically, mode 0644. A corrupt file is moved aside and reported.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def _load(self) -> dict[str, str]:
        data: dict[str, str] = read_json_file(self.path, {}, expect=dict)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
            raise CorruptFileError(f"{self.path} maps an address to something other than a key",
                                   path=str(self.path))
        return data

    def _save(self, data: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json_file(self.path, data, KNOWN_HOSTS_MODE)

    def add(self, address: str, serverkey: str) -> None:
        """Remember ``serverkey`` (any accepted encoding, stored as 43 characters) for ``address``."""
        key = known_host_key(address)
        normalized = encode_key(decode_key(serverkey))
        data = self._load()
        data[key] = normalized
        self._save(data)

    def serverkey(self, address: str) -> str | None:
        """The server key remembered for ``address``, or None."""
        return self._load().get(known_host_key(address))

    def remove(self, address: str) -> bool:
        """Forget ``address``; False when it was not known."""
        key = known_host_key(address)
        data = self._load()
        if data.pop(key, None) is None:
            return False
        self._save(data)
        return True

    def items(self) -> list[tuple[str, str]]:
        """Every ``(address key, server key)`` pair, sorted by address key."""
        return sorted(self._load().items())

    def __repr__(self) -> str:
        return f"KnownHosts({str(self.path)!r})"
