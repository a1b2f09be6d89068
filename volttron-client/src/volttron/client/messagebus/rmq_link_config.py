"""The links files of ``vcfg rabbitmq federation`` and ``vcfg rabbitmq shovel``, and the links
they describe (docs/protocol.md §6.5); :mod:`~volttron.client.messagebus.rmq_links` sets them on the broker.

Federation, ``rabbitmq_federation_config.yml``::

    federation-upstream:
      <remote host>:               # a label when the entry gives ``host``
        host: <remote host>        # (ours) default: the key
        port: 5672                 # default 5671 with certificates, else 5672
        virtual-host: volttron
        federation-user: <user on the remote broker>     # default <local instance>-federation
        password: <its password>   # (ours) plain login; omit with certificates
        https-port: 8443           # kept for compatibility, unused
        certificates: {remote_ca: ca.crt, public_cert: me.crt, private_key: me.pem}

makes the parameter ``federation-upstream`` ``upstream-<host>-<vhost>`` (the vhost keeps two
instances of one broker apart) and the policy ``volttron-federation`` (pattern ``^volttron``,
``{"federation-upstream-set": "all"}``, applied to exchanges): the local ``volttron`` exchange
receives what is published upstream for any binding made here, so an ``all_platforms``
subscription (``__pubsub__.*.<prefix>.#``) sees the remote publishes.

Shovel, ``rabbitmq_shovel_config.yml``::

    shovel:
      <remote host>:
        host / port / virtual-host / password / certificates: as above
        shovel-user: <user on the remote broker>          # default <local instance>-shovel
        pubsub: {<local identity>: [topic, ...]}
        rpc: {<remote instance>: [[<local identity>, <remote identity>], ...]}

makes one ``shovel`` parameter per distinct source routing key, from this vhost's ``volttron``
exchange to the remote ``volttron`` exchange: ``shovel-<host>-<vhost>-pubsub-<topic>`` with key
``__pubsub__.<local instance>.<topic>.#``, and ``shovel-<host>-<vhost>-rpc-<remote instance>.<remote
identity>`` with key ``<remote instance>.<remote identity>.#`` (two local identities calling one
remote identity share its shovel: two shovels would deliver every message twice).

Plain logins go into ``amqp://user:password@host:port/<vhost>``; with certificates the URI is
``amqps://host:port/<vhost>?cacertfile=..&certfile=..&keyfile=..&verify=verify_peer&
server_name_indication=<host>&auth_mechanism=external`` (the certificate's common name is the user).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from volttron.client.messagebus.rmq_config import AMQP_PORT, AMQPS_PORT
from volttron.client.messagebus.rmq_wire import EXCHANGE, PUBSUB_KEY, topic_words
from volttron.utils.errors import ConfigError

FEDERATION_FILE = "rabbitmq_federation_config.yml"
SHOVEL_FILE = "rabbitmq_shovel_config.yml"
FEDERATION_KEY = "federation-upstream"
SHOVEL_KEY = "shovel"
RECONNECT_DELAY = 5

_REMOTE_KEYS = ("host", "port", "virtual-host", "password", "https-port", "certificates")
_FEDERATION_KEYS = (*_REMOTE_KEYS, "federation-user")
_SHOVEL_KEYS = (*_REMOTE_KEYS, "shovel-user", "pubsub", "rpc")
_CERT_KEYS = ("remote_ca", "public_cert", "private_key")


@dataclass(frozen=True)
class RemoteBroker:
    """Where the other instance's broker is and how the link logs in there."""

    host: str
    vhost: str
    user: str
    port: int = AMQP_PORT
    password: str | None = None
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None

    @property
    def tls(self) -> bool:
        """True when the link uses TLS (certificates were given)."""
        return bool(self.certfile or self.cafile)

    def uri(self) -> str:
        """The AMQP URI the plugin connects with (holds the password: never print it)."""
        vhost = quote(self.vhost, safe="")
        where = f"{_host(self.host)}:{self.port}/{vhost}"
        if not self.tls:
            return f"amqp://{quote(self.user, safe='')}:{quote(self.password or '', safe='')}@{where}"
        query: dict[str, str] = {}
        if self.cafile:
            query["cacertfile"] = self.cafile
        if self.certfile:
            query["certfile"] = self.certfile
        if self.keyfile:
            query["keyfile"] = self.keyfile
        query["verify"] = "verify_peer"
        query["server_name_indication"] = self.host
        if self.password is None:
            query["auth_mechanism"] = "external"
            login = ""
        else:
            login = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}@"
        return f"amqps://{login}{where}?{urlencode(query)}"

    def redacted(self) -> str:
        """``amqp[s]://user@host:port/vhost`` - for messages."""
        scheme = "amqps" if self.tls else "amqp"
        return f"{scheme}://{self.user}@{_host(self.host)}:{self.port}/{quote(self.vhost, safe='')}"


@dataclass(frozen=True)
class Upstream:
    """One federation upstream: parameter ``name`` on the local vhost."""

    name: str
    remote: RemoteBroker

    def parameter(self) -> dict[str, Any]:
        """The value of the ``federation-upstream`` parameter."""
        return {"uri": self.remote.uri(), "trust-user-id": True, "max-hops": 1, "ack-mode": "on-confirm",
                "reconnect-delay": RECONNECT_DELAY}


@dataclass(frozen=True)
class Shovel:
    """One dynamic shovel from the local ``volttron`` exchange to the remote one."""

    name: str
    remote: RemoteBroker
    source_key: str
    """Routing keys the shovel takes (``__pubsub__.<instance>.<topic>.#`` or ``<instance>.<peer>.#``)."""

    def parameter(self, local_vhost: str) -> dict[str, Any]:
        """The value of the ``shovel`` parameter (source: the local node's ``local_vhost``)."""
        return {
            "src-protocol": "amqp091",
            "src-uri": f"amqp:///{quote(local_vhost, safe='')}",
            "src-exchange": EXCHANGE,
            "src-exchange-key": self.source_key,
            "dest-protocol": "amqp091",
            "dest-uri": self.remote.uri(),
            "dest-exchange": EXCHANGE,
            "dest-add-forward-headers": True,
            # the remote broker checks user_id against the shovel's login: it vouches for the shovel
            "dest-publish-properties": {"user_id": self.remote.user},
            "ack-mode": "on-confirm",
            "reconnect-delay": RECONNECT_DELAY,
        }


# -- reading the files -------------------------------------------------------------------------

def load_links_file(path: str | os.PathLike[str], key: str) -> dict[str, Any]:
    """The ``key`` mapping (``federation-upstream`` or ``shovel``) of a links file."""
    from volttron.utils.config import load_config

    document = load_config(path)
    unknown = sorted(set(document) - {key})
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)} (expected {key!r})")
    entries = document.get(key)
    if not isinstance(entries, dict) or not entries:
        raise ConfigError(f"{path}: {key!r} must map remote hosts to their settings")
    return entries


def parse_federation(entries: dict[str, Any], local_instance: str, source: str = "") -> list[Upstream]:
    """The upstreams of a ``federation-upstream`` mapping; :class:`ConfigError` naming the bad key."""
    upstreams = []
    for label, entry in entries.items():
        where = f"{source + ': ' if source else ''}{FEDERATION_KEY}.{label}"
        remote = _remote(label, entry, where, _FEDERATION_KEYS, "federation-user",
                         f"{local_instance}-federation")
        upstreams.append(Upstream(f"upstream-{remote.host}-{remote.vhost}", remote))
    _unique([u.name for u in upstreams], source or FEDERATION_KEY)
    return upstreams


def parse_shovels(entries: dict[str, Any], local_instance: str, source: str = "") -> list[Shovel]:
    """The shovels of a ``shovel`` mapping (see the module docstring)."""
    shovels: dict[str, Shovel] = {}
    for label, entry in entries.items():
        where = f"{source + ': ' if source else ''}{SHOVEL_KEY}.{label}"
        remote = _remote(label, entry, where, _SHOVEL_KEYS, "shovel-user", f"{local_instance}-shovel")
        prefix = f"shovel-{remote.host}-{remote.vhost}"
        pubsub = entry.get("pubsub") or {}
        rpc = entry.get("rpc") or {}
        if not isinstance(pubsub, dict):
            raise ConfigError(f"{where}.pubsub must map local identities to lists of topics")
        if not isinstance(rpc, dict):
            raise ConfigError(f"{where}.rpc must map remote instances to [local identity, remote identity] "
                              "pairs")
        if not pubsub and not rpc:
            raise ConfigError(f"{where}: give pubsub topics or rpc pairs to shovel")
        for identity, topics in pubsub.items():
            if not isinstance(topics, list) or not all(isinstance(t, str) and t.strip("/") for t in topics):
                raise ConfigError(f"{where}.pubsub.{identity} must be a list of topics")
            for topic in topics:
                words = topic_words(topic.strip("/"))
                key = f"{PUBSUB_KEY}.{local_instance}.{words}.#"
                shovel = Shovel(f"{prefix}-pubsub-{words}", remote, key)
                shovels[shovel.name] = shovel
        for instance, pairs in rpc.items():
            if not isinstance(pairs, list) or not all(_pair(p) for p in pairs):
                raise ConfigError(f"{where}.rpc.{instance} must be a list of [local identity, remote "
                                  "identity]")
            if str(instance) == local_instance:
                raise ConfigError(f"{where}.rpc.{instance} names this instance; name the remote one")
            for _local, remote_identity in pairs:
                key = f"{instance}.{remote_identity}"
                shovel = Shovel(f"{prefix}-rpc-{key}", remote, f"{key}.#")
                shovels[shovel.name] = shovel
    return list(shovels.values())


def _pair(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) and v for v in value)


def _unique(names: list[str], source: str) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise ConfigError(f"{source}: two entries make the same link {name!r} (same host and vhost)")
        seen.add(name)


def _remote(label: Any, entry: Any, where: str, known: tuple[str, ...], user_key: str,
            default_user: str) -> RemoteBroker:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a mapping of settings")
    unknown = sorted(set(entry) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(known)})")
    host = str(entry.get("host") or label).strip()
    if not host or "/" in host:
        raise ConfigError(f"{where}: host must be a host name, not {host!r}")
    vhost = entry.get("virtual-host")
    if not isinstance(vhost, str) or not vhost:
        raise ConfigError(f"{where}.virtual-host is required (the remote instance's vhost)")
    certificates = entry.get("certificates") or {}
    if not isinstance(certificates, dict):
        raise ConfigError(f"{where}.certificates must map {', '.join(_CERT_KEYS)} to files")
    bad = sorted(set(certificates) - set(_CERT_KEYS))
    if bad:
        raise ConfigError(f"{where}.certificates: unknown key(s) {', '.join(bad)} "
                          f"(known: {', '.join(_CERT_KEYS)})")
    files: dict[str, str] = {}
    for key in _CERT_KEYS:
        value = certificates.get(key)
        if value is None:
            continue
        path = Path(str(value)).expanduser()
        if not path.is_file():
            raise ConfigError(f"{where}.certificates.{key}: file {path} not found")
        files[key] = str(path.resolve())
    if files and not {"public_cert", "private_key"} <= set(files):
        raise ConfigError(f"{where}.certificates needs public_cert and private_key together")
    password = entry.get("password")
    if password is not None and not isinstance(password, str | int):
        raise ConfigError(f"{where}.password must be text")
    if not files and password is None:
        raise ConfigError(f"{where}: give password (plain login) or certificates (TLS)")
    try:
        port = int(entry.get("port") or (AMQPS_PORT if files else AMQP_PORT))
    except (TypeError, ValueError):
        raise ConfigError(f"{where}.port must be a port number, not {entry.get('port')!r}") from None
    if not 0 < port < 65536:
        raise ConfigError(f"{where}.port must be a port number, not {port}")
    user = entry.get(user_key) or default_user
    return RemoteBroker(host=host, vhost=vhost, user=str(user), port=port,
                        password=None if password is None else str(password), cafile=files.get("remote_ca"),
                        certfile=files.get("public_cert"), keyfile=files.get("private_key"))


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


__all__ = ["FEDERATION_FILE", "FEDERATION_KEY", "SHOVEL_FILE", "SHOVEL_KEY", "RemoteBroker", "Shovel",
           "Upstream", "load_links_file", "parse_federation", "parse_shovels"]
