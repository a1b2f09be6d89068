"""Options of the ``volttron`` command, merged with ``$VOLTTRON_HOME/config`` (docs/protocol.md §5.2, §5.3).

The INI file's ``[volttron]`` section uses the long option names (``vip-address``,
``instance-name``, ``message-bus``, ...); a value given on the command line wins over the file.
``vip-address`` in the file may list several addresses, separated by spaces, commas or new lines.
The original's ``allow-auth = False`` and the 2.x ``auth-enabled = false`` are read as
``--auth-disabled``.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from volttron.server import __version__
from volttron.utils.config import load_platform_config
from volttron.utils.errors import ConfigError
from volttron.utils.home import config_file_path, get_home, local_vip_address

MESSAGE_BUSES = ("zmq", "rmq")
DEFAULT_AGENT_MONITOR_FREQUENCY = 600
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024
# The router's bounds (docs/reliability.md, "The router's limits").
DEFAULT_MAX_SUBSCRIPTIONS_PER_PEER = 10_000
DEFAULT_MAX_QUEUED_BYTES_PER_PEER = 128 * 1024 * 1024
DEFAULT_MAX_QUEUED_BYTES = 1024 * 1024 * 1024
DEFAULT_PEER_OVERFLOW_TIMEOUT = 60
DEFAULT_IDENTITY_CLAIM_TIMEOUT = 10

# Keys other tools (vcfg, the web and central services) keep in the same file: accepted, not ours.
_FOREIGN_KEYS = frozenset({
    "volttron-central-rmq-address", "web-ca-cert",
    "agent-isolation-mode", "setup-mode", "autostart", "enable-federation",
    "messagebus", "address", "local-address",
})
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class OptionsError(ConfigError):
    """A bad command line or configuration value; the message is one line for the user."""

    exit_code = 2


class ConfigFileError(OptionsError):
    """The configuration file cannot be read or parsed (not a usage error)."""

    exit_code = 1


@dataclass(frozen=True)
class PlatformOptions:
    """Everything the platform needs to start, after merging the command line and the config file."""

    home: Path
    instance_name: str
    vip_addresses: tuple[str, ...] = ()
    vip_local_address: str = ""
    message_bus: str = "zmq"
    auth_enabled: bool = True
    msgdebug: bool = False
    debug: bool = False
    verbose: int = 0
    quiet: int = 0
    log_file: str | None = None
    bind_web_address: str | None = None
    web_ssl_cert: str | None = None
    web_ssl_key: str | None = None
    web_secret_key: str | None = field(default=None, repr=False)
    volttron_central_address: str | None = None
    volttron_central_serverkey: str | None = None
    agent_monitor_frequency: int = DEFAULT_AGENT_MONITOR_FREQUENCY
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    max_subscriptions_per_peer: int = DEFAULT_MAX_SUBSCRIPTIONS_PER_PEER
    max_queued_bytes_per_peer: int = DEFAULT_MAX_QUEUED_BYTES_PER_PEER
    """Bytes the router may hold for one peer that does not read (at least ``max_message_size``)."""
    max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES
    """Bytes the router may hold for all such peers together."""
    peer_overflow_timeout: int = DEFAULT_PEER_OVERFLOW_TIMEOUT
    """Seconds a peer may stay over its queue bound before it is disconnected."""
    identity_claim_timeout: int = DEFAULT_IDENTITY_CLAIM_TIMEOUT
    """Seconds a new connection may stay silent (holding its identity unchecked) before it is closed."""
    secure_agent_users: bool = False
    """Secure mode: each agent gets its own system user and runs as it (needs root)."""
    isolate_agents: bool = False
    """Every agent is installed into an environment of its own unless ``vctl install --shared``."""
    config_file: Path | None = None
    notes: tuple[str, ...] = field(default=())
    """Things worth a warning found while reading the configuration (logged once logging is set up)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise OptionsError(message)


def build_parser() -> argparse.ArgumentParser:
    """The ``volttron`` argument parser. Every default is None so the config file can fill gaps."""
    parser = _Parser(
        prog="volttron",
        description="Run a VOLTTRON platform in $VOLTTRON_HOME (default ~/.volttron).",
        epilog="Options can also be set in $VOLTTRON_HOME/config, section [volttron], with the long "
               "option names as keys (e.g. vip-address = tcp://127.0.0.1:22916); the command line wins.",
    )
    add = parser.add_argument
    add("-c", "--config", metavar="FILE", help="platform configuration file (default $VOLTTRON_HOME/config)")
    add("-l", "--log", metavar="FILE", help="log to FILE ('-' for stdout; default stderr)")
    add("-v", "--verbose", action="count", help="more logging (-vv for debug)")
    add("-q", "--quiet", action="count", help="less logging")
    add("--vip-address", metavar="ZMQADDR", action="append",
        help="also listen on this address, e.g. tcp://127.0.0.1:22916 (repeatable)")
    add("--vip-local-address", metavar="ZMQADDR",
        help="local address for agents on this host (default ipc://@$VOLTTRON_HOME/run/vip.socket)")
    add("--instance-name", metavar="NAME", help="name of this platform (default: config, else the host name)")
    add("--message-bus", choices=MESSAGE_BUSES,
        help="message bus: zmq (the default) or rmq (RabbitMQ, set up with 'vcfg rabbitmq single')")
    add("--auth-disabled", action="store_const", const=True,
        help="no CURVE encryption or authentication: only for trusted networks")
    add("--bind-web-address", metavar="URL",
        help="start the web service at http(s)://host:port (e.g. https://127.0.0.1:8443)")
    add("--web-ssl-cert", metavar="FILE",
        help="the web service's certificate (PEM; default: one issued by the platform's CA)")
    add("--web-ssl-key", metavar="FILE", help="the private key of --web-ssl-cert (PEM)")
    add("--web-secret-key", metavar="TEXT",
        help="secret that signs web bearer tokens (default: generated in $VOLTTRON_HOME/web-secret-key; "
             "prefer the config file, a command line is visible to other users)")
    add("--volttron-central-address", metavar="URL", help=argparse.SUPPRESS)
    add("--volttron-central-serverkey", metavar="KEY", help=argparse.SUPPRESS)
    add("--agent-monitor-frequency", metavar="SECONDS", type=int, help="agent monitor period (default 600)")
    add("--max-message-size", metavar="BYTES", type=int,
        help="largest frame a peer may send; larger ones disconnect it (default 64 MiB)")
    add("--max-subscriptions-per-peer", metavar="COUNT", type=int,
        help=f"pub/sub prefixes one peer may hold (default {DEFAULT_MAX_SUBSCRIPTIONS_PER_PEER})")
    add("--max-queued-bytes-per-peer", metavar="BYTES", type=int,
        help="bytes the router holds for a peer that does not read; past it messages to that peer are "
             "dropped (default 128 MiB)")
    add("--max-queued-bytes", metavar="BYTES", type=int,
        help="bytes the router holds for all peers that do not read (default 1 GiB)")
    add("--peer-overflow-timeout", metavar="SECONDS", type=int,
        help=f"disconnect a peer over its queue bound this long (default {DEFAULT_PEER_OVERFLOW_TIMEOUT})")
    add("--identity-claim-timeout", metavar="SECONDS", type=int,
        help="close a connection that sends nothing this long after connecting "
             f"(default {DEFAULT_IDENTITY_CLAIM_TIMEOUT})")
    add("--secure-agent-users", action="store_const", const=True,
        help="run each agent as its own system user that may write only to its data folder "
             "(needs root; see docs/secure-mode.md)")
    add("--isolate-agents", action="store_const", const=True,
        help="install every agent into a virtual environment of its own under VOLTTRON_HOME unless "
             "vctl install --shared (see docs/compatibility.md)")
    add("--msgdebug", action="store_const", const=True, help="log every routed message at DEBUG")
    add("--debug", action="store_const", const=True, help="show tracebacks on errors")
    add("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def parse_bool(value: str, key: str) -> bool:
    """An INI boolean (true/false, yes/no, on/off, 1/0)."""
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise OptionsError(f"{key} must be true or false, not {value!r}")


def _parse_int(value: Any, key: str, minimum: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise OptionsError(f"{key} must be a whole number, not {value!r}") from None
    if number < minimum:
        raise OptionsError(f"{key} must be at least {minimum}, not {number}")
    return number


def check_address(address: str, key: str) -> str:
    """``address`` if it is a tcp or ipc ZeroMQ address, else :class:`OptionsError`."""
    text = address.strip()
    match = re.fullmatch(r"(tcp|ipc)://(.+)", text)
    if not match:
        raise OptionsError(f"{key}: {address!r} is not a tcp:// or ipc:// address")
    if match.group(1) == "tcp" and not re.fullmatch(r"[^/?#]+:(\d+|\*)([?#].*)?", match.group(2)):
        raise OptionsError(f"{key}: {address!r} needs a host and a port, e.g. tcp://127.0.0.1:22916")
    return text


def check_web_address(address: str, key: str = "bind-web-address") -> str:
    """``address`` if it is ``http(s)://host:port``, else :class:`OptionsError`."""
    text = address.strip()
    match = re.fullmatch(r"(https?)://(\[[0-9A-Fa-f:.]+\]|[^/:?#\[\]@\s]+):(\d{1,5})/?", text)
    if not match or not 0 < int(match.group(3)) < 65536:
        raise OptionsError(f"{key}: {address!r} is not http(s)://host:port, e.g. https://127.0.0.1:8443")
    return text


def parse_options(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> PlatformOptions:
    """Parse the command line, read the config file, merge them (command line wins)."""
    env = os.environ if env is None else env
    args = build_parser().parse_args(argv)
    home = get_home(env)
    config_path = Path(args.config).expanduser() if args.config else config_file_path(home)
    if args.config and not config_path.is_file():
        raise OptionsError(f"configuration file {config_path} not found")
    try:
        config = {k.lower(): v for k, v in load_platform_config(config_path).items()}
    except ConfigError as exc:
        raise ConfigFileError(" ".join(str(exc).split())) from None
    return merge_options(args, config, home, config_path)


def merge_options(args: argparse.Namespace, config: Mapping[str, str], home: Path,
                  config_path: Path | None = None) -> PlatformOptions:
    """Combine parsed arguments with the ``[volttron]`` section (a dict of text values)."""
    notes: list[str] = []
    where = str(config_path) if config_path else "config"

    def pick(name: str) -> Any:
        given = getattr(args, name.replace("-", "_"))
        return given if given is not None else config.get(name)

    known = {a.dest.replace("_", "-") for a in build_parser()._actions}
    known |= {"allow-auth", "auth-enabled", "log", "verbose", "quiet"}
    for key in config:
        if key not in known and key not in _FOREIGN_KEYS:
            notes.append(f"{where}: ignoring unknown key {key!r}")

    if args.vip_address is not None:
        raw_addresses = list(args.vip_address)
    else:
        raw_addresses = [a for a in re.split(r"[\s,]+", config.get("vip-address", "")) if a]
    addresses = tuple(dict.fromkeys(check_address(a, "vip-address") for a in raw_addresses))
    local = pick("vip-local-address") or local_vip_address(home)
    if not local.startswith("ipc://"):
        raise OptionsError(f"vip-local-address: {local!r} is not an ipc:// address")

    auth_enabled = True
    if args.auth_disabled:
        auth_enabled = False
    else:
        for key, inverted in (("auth-disabled", True), ("allow-auth", False), ("auth-enabled", False)):
            if key in config:
                value = parse_bool(config[key], key)
                auth_enabled = not value if inverted else value
                break

    message_bus = (pick("message-bus") or "zmq").strip().lower()
    if message_bus not in MESSAGE_BUSES:
        raise OptionsError(f"message-bus must be one of {', '.join(MESSAGE_BUSES)}, not {message_bus!r}")

    instance_name = (pick("instance-name") or "").strip() or socket.gethostname() or "volttron1"
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", instance_name):
        raise OptionsError(f"instance-name {instance_name!r} may hold only letters, digits, '_', '.' and '-'")

    def flag(name: str) -> bool:
        given = getattr(args, name)
        if given is not None:
            return bool(given)
        key = name.replace("_", "-")
        return parse_bool(config[key], key) if key in config else False

    secure_agent_users = flag("secure_agent_users")
    if secure_agent_users and message_bus != "zmq":
        raise OptionsError("secure-agent-users works with the zmq message bus only: RabbitMQ agents read "
                           "broker settings and certificates from VOLTTRON_HOME, which secure mode keeps "
                           "from them")
    verbose = args.verbose if args.verbose is not None else _parse_int(config.get("verbose", 0), "verbose", 0)
    quiet = args.quiet if args.quiet is not None else _parse_int(config.get("quiet", 0), "quiet", 0)
    frequency = pick("agent-monitor-frequency")
    if frequency is None:
        frequency = DEFAULT_AGENT_MONITOR_FREQUENCY
    max_size = pick("max-message-size")
    if max_size is None:
        max_size = DEFAULT_MAX_MESSAGE_SIZE

    def limit(key: str, default: int, minimum: int) -> int:
        value = pick(key)
        return default if value is None else _parse_int(value, key, minimum)

    return PlatformOptions(
        home=home,
        instance_name=instance_name,
        vip_addresses=addresses,
        vip_local_address=local,
        message_bus=message_bus,
        auth_enabled=auth_enabled,
        msgdebug=flag("msgdebug"),
        debug=flag("debug"),
        verbose=verbose,
        quiet=quiet,
        log_file=pick("log"),
        bind_web_address=check_web_address(web) if (web := pick("bind-web-address")) else None,
        web_ssl_cert=pick("web-ssl-cert"),
        web_ssl_key=pick("web-ssl-key"),
        web_secret_key=pick("web-secret-key"),
        volttron_central_address=pick("volttron-central-address"),
        volttron_central_serverkey=pick("volttron-central-serverkey"),
        agent_monitor_frequency=_parse_int(frequency, "agent-monitor-frequency", 1),
        max_message_size=_parse_int(max_size, "max-message-size", 1024),
        max_subscriptions_per_peer=limit("max-subscriptions-per-peer", DEFAULT_MAX_SUBSCRIPTIONS_PER_PEER, 1),
        max_queued_bytes_per_peer=limit("max-queued-bytes-per-peer", DEFAULT_MAX_QUEUED_BYTES_PER_PEER, 1024),
        max_queued_bytes=limit("max-queued-bytes", DEFAULT_MAX_QUEUED_BYTES, 1024),
        peer_overflow_timeout=limit("peer-overflow-timeout", DEFAULT_PEER_OVERFLOW_TIMEOUT, 1),
        identity_claim_timeout=limit("identity-claim-timeout", DEFAULT_IDENTITY_CLAIM_TIMEOUT, 1),
        secure_agent_users=secure_agent_users,
        isolate_agents=flag("isolate_agents"),
        config_file=config_path,
        notes=tuple(notes),
    )
