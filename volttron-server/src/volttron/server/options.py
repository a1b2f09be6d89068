"""Options of the ``volttron`` command, merged with ``$VOLTTRON_HOME/config`` (docs/protocol.md §5.2, §5.3).

The command line is a click command whose defaults (click's ``default_map``) are the INI file's
``[volttron]`` section, keyed by the long option names (``vip-address``, ``instance-name``,
``message-bus``, ...), so a value given on the command line wins over the file.
``vip-address`` in the file may list several addresses, separated by spaces, commas or new lines.
The original's ``allow-auth = False`` and the 2.x ``auth-enabled = false`` are read as
``--auth-disabled``.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

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


def _option(*decls: str, **attrs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    attrs.setdefault("default", None)
    return click.option(*decls, **attrs)


def _load_config(ctx: click.Context, param: click.Parameter, value: str | None) -> Path:
    """``--config`` (eager): read the file and make its ``[volttron]`` section the defaults."""
    home: Path = ctx.obj["home"]
    path = Path(value).expanduser() if value else config_file_path(home)
    if value and not path.is_file():
        raise OptionsError(f"configuration file {path} not found")
    try:
        config = {k.lower(): v for k, v in load_platform_config(path).items()}
    except ConfigError as exc:
        raise ConfigFileError(" ".join(str(exc).split())) from None
    ctx.meta["volttron.config"] = config
    ctx.default_map = _default_map(ctx.command, config)
    return path


def _default_map(command: click.Command, config: Mapping[str, str]) -> dict[str, Any]:
    """The config file's values as click defaults: the command line wins over them, as click does."""
    defaults: dict[str, Any] = {}
    for param in command.params:
        key = (param.name or "").replace("_", "-")
        if key not in config or key in _NOT_IN_FILE:
            continue
        value = config[key]
        if key == "vip-address":
            defaults["vip_address"] = tuple(a for a in re.split(r"[\s,]+", value) if a)
        elif isinstance(param, click.Option) and param.is_flag:
            defaults[param.name or key] = parse_bool(value, key)
        elif key in ("verbose", "quiet"):
            defaults[param.name or key] = _parse_int(value, key, 0)
        else:
            defaults[param.name or key] = value
    auth_disabled: bool | None = None
    for key, inverted in (("auth-disabled", True), ("allow-auth", False), ("auth-enabled", False)):
        if key in config:
            said = parse_bool(config[key], key)
            auth_disabled = said if inverted else not said
            break
    if auth_disabled is not None:
        defaults["auth_disabled"] = auth_disabled
    return defaults


_NOT_IN_FILE = frozenset({"config", "auth-disabled"})
"""Options the file does not set by their own name (``auth-disabled`` has three spellings there)."""


def volttron_command() -> click.Command:
    """The ``volttron`` command line (click); the config file's values are its defaults."""

    @click.command(
        "volttron",
        help="Run a VOLTTRON platform in $VOLTTRON_HOME (default ~/.volttron).",
        epilog="Options can also be set in $VOLTTRON_HOME/config, section [volttron], with the long "
               "option names as keys (e.g. vip-address = tcp://127.0.0.1:22916); the command line wins.",
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    )
    @click.option("-c", "--config", metavar="FILE", is_eager=True, expose_value=True, callback=_load_config,
                  help="platform configuration file (default $VOLTTRON_HOME/config)")
    @_option("-l", "--log", metavar="FILE", help="log to FILE ('-' for stdout; default stderr)")
    @click.option("-v", "--verbose", count=True, help="more logging (-vv for debug)")
    @click.option("-q", "--quiet", count=True, help="less logging")
    @_option("--vip-address", metavar="ZMQADDR", multiple=True, default=(),
             help="also listen on this address, e.g. tcp://127.0.0.1:22916 (repeatable)")
    @_option("--vip-local-address", metavar="ZMQADDR",
             help="local address for agents on this host (default ipc://@$VOLTTRON_HOME/run/vip.socket)")
    @_option("--instance-name", metavar="NAME",
             help="name of this platform (default: config, else the host name)")
    @_option("--message-bus", metavar="zmq|rmq",
             help="message bus: zmq (the default) or rmq (RabbitMQ, set up with 'vcfg rabbitmq single')")
    @click.option("--auth-disabled", is_flag=True, default=False,
                  help="no CURVE encryption or authentication: only for trusted networks")
    @_option("--bind-web-address", metavar="URL",
             help="start the web service at http(s)://host:port (e.g. https://127.0.0.1:8443)")
    @_option("--web-ssl-cert", metavar="FILE",
             help="the web service's certificate (PEM; default: one issued by the platform's CA)")
    @_option("--web-ssl-key", metavar="FILE", help="the private key of --web-ssl-cert (PEM)")
    @_option("--web-secret-key", metavar="TEXT",
             help="secret that signs web bearer tokens (default: generated in $VOLTTRON_HOME/web-secret-key; "
                  "prefer the config file, a command line is visible to other users)")
    @_option("--volttron-central-address", metavar="URL", hidden=True)
    @_option("--volttron-central-serverkey", metavar="KEY", hidden=True)
    @_option("--agent-monitor-frequency", metavar="SECONDS", help="agent monitor period (default 600)")
    @_option("--max-message-size", metavar="BYTES",
             help="largest frame a peer may send; larger ones disconnect it (default 64 MiB)")
    @_option("--max-subscriptions-per-peer", metavar="COUNT",
             help=f"pub/sub prefixes one peer may hold (default {DEFAULT_MAX_SUBSCRIPTIONS_PER_PEER})")
    @_option("--max-queued-bytes-per-peer", metavar="BYTES",
             help="bytes the router holds for a peer that does not read; past it messages to that peer are "
                  "dropped (default 128 MiB)")
    @_option("--max-queued-bytes", metavar="BYTES",
             help="bytes the router holds for all peers that do not read (default 1 GiB)")
    @_option("--peer-overflow-timeout", metavar="SECONDS",
             help="disconnect a peer over its queue bound this long "
                  f"(default {DEFAULT_PEER_OVERFLOW_TIMEOUT})")
    @_option("--identity-claim-timeout", metavar="SECONDS",
             help="close a connection that sends nothing this long after connecting "
                  f"(default {DEFAULT_IDENTITY_CLAIM_TIMEOUT})")
    @click.option("--secure-agent-users", is_flag=True, default=False,
                  help="run each agent as its own system user that may write only to its data folder "
                       "(needs root; see docs/secure-mode.md)")
    @click.option("--isolate-agents", is_flag=True, default=False,
                  help="install every agent into a virtual environment of its own under VOLTTRON_HOME unless "
                       "vctl install --shared (see docs/compatibility.md)")
    @click.option("--msgdebug", is_flag=True, default=False, help="log every routed message at DEBUG")
    @click.option("--debug", is_flag=True, default=False, help="show tracebacks on errors")
    @click.version_option(__version__, prog_name="volttron", message="%(prog)s %(version)s")
    def command(**params: Any) -> dict[str, Any]:
        return params

    return command


class Handled(Exception):
    """``--help`` or ``--version`` was answered; the command ends with :attr:`exit_code`."""

    def __init__(self, exit_code: int) -> None:
        super().__init__(exit_code)
        self.exit_code = exit_code


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
    """Parse the command line over the config file's values (command line wins) and check them.

    :class:`OptionsError` (one line) for a bad value; :class:`Handled` after ``--help``/``--version``.
    """
    env = os.environ if env is None else env
    home = get_home(env)
    args = list(sys.argv[1:] if argv is None else argv)
    command = volttron_command()
    try:
        with command.make_context("volttron", args, obj={"home": home}) as ctx:
            params = dict(ctx.params)
            config = ctx.meta.get("volttron.config", {})
    except click.exceptions.Exit as exc:
        raise Handled(exc.exit_code) from None
    except click.ClickException as exc:
        raise OptionsError(" ".join(exc.format_message().split())) from None
    config_path = params.pop("config")
    return merge_options(params, config, home, config_path)


def merge_options(params: Mapping[str, Any], config: Mapping[str, str], home: Path,
                  config_path: Path | None = None) -> PlatformOptions:
    """Check the parsed values (``params``, the config file's already under the command line's)."""
    notes: list[str] = []
    where = str(config_path) if config_path else "config"

    def pick(name: str) -> Any:
        return params.get(name.replace("-", "_"))

    known = {name.replace("_", "-") for name in params} | {"allow-auth", "auth-enabled", "config"}
    for key in config:
        if key not in known and key not in _FOREIGN_KEYS:
            notes.append(f"{where}: ignoring unknown key {key!r}")

    addresses = tuple(dict.fromkeys(check_address(a, "vip-address") for a in params.get("vip_address") or ()))
    local = pick("vip-local-address") or local_vip_address(home)
    if not local.startswith("ipc://"):
        raise OptionsError(f"vip-local-address: {local!r} is not an ipc:// address")

    auth_enabled = not params.get("auth_disabled")
    message_bus = (pick("message-bus") or "zmq").strip().lower()
    if message_bus not in MESSAGE_BUSES:
        raise OptionsError(f"message-bus must be one of {', '.join(MESSAGE_BUSES)}, not {message_bus!r}")

    instance_name = (pick("instance-name") or "").strip() or socket.gethostname() or "volttron1"
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", instance_name):
        raise OptionsError(f"instance-name {instance_name!r} may hold only letters, digits, '_', '.' and '-'")

    def flag(name: str) -> bool:
        return bool(params.get(name))

    secure_agent_users = flag("secure_agent_users")
    if secure_agent_users and message_bus != "zmq":
        raise OptionsError("secure-agent-users works with the zmq message bus only: RabbitMQ agents read "
                           "broker settings and certificates from VOLTTRON_HOME, which secure mode keeps "
                           "from them")
    verbose = int(params.get("verbose") or 0)
    quiet = int(params.get("quiet") or 0)
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
