"""Administering a RabbitMQ broker: vhosts, users, permissions, parameters, policies.

See docs/protocol.md §6.1, §6.5.

Two back-ends with one interface, :class:`BrokerAdmin`: the management plugin's HTTP API
(:class:`HttpAdmin`, any broker the platform can reach) and ``rabbitmqctl`` (:class:`CtlAdmin`,
the broker on this host, run by a user allowed to use it). :func:`broker_admin` picks the HTTP API
when it answers, else ``rabbitmqctl``. Exchanges are declared over AMQP by whoever connects
(:func:`declare_exchanges`), since ``rabbitmqctl`` cannot.

Passwords go to ``rabbitmqctl`` on its standard input, never on its command line. What the
platform grants (agents' permissions, limits, queue policies) are in :mod:`~.rmq_permissions`.

Errors::

    VolttronError
     +-- BrokerAdminError    the broker refused or could not be asked
          +-- BrokerDown     nothing answers where the broker should be
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

from volttron.client.messagebus.rmq_config import BrokerSettings
from volttron.client.messagebus.rmq_permissions import ADMIN_PERMISSIONS as ADMIN_PERMISSIONS  # tools' import
from volttron.client.messagebus.rmq_permissions import Permissions, TopicPermissions
from volttron.client.messagebus.rmq_wire import ALTERNATE_EXCHANGE, EXCHANGE
from volttron.utils.errors import VolttronError

AGENT_TAG = "volttron-agent"
"""Tag of the broker users the platform makes for agents (and may delete again)."""
CTL_TIMEOUT = 60.0
HTTP_TIMEOUT = 10.0


class BrokerAdminError(VolttronError):
    """The broker refused an administrative request, or could not be asked."""


class BrokerDown(BrokerAdminError):
    """Nothing answers where the broker should be."""


class BrokerAdmin(ABC):
    """Administrative requests to one broker."""

    kind = ""

    @abstractmethod
    def check(self) -> None:
        """Raise :class:`BrokerDown` when the broker does not answer."""

    @abstractmethod
    def vhosts(self) -> list[str]:
        """The names of the vhosts."""

    @abstractmethod
    def add_vhost(self, name: str) -> None:
        """Create vhost ``name`` (nothing happens when it exists)."""

    @abstractmethod
    def delete_vhost(self, name: str) -> None:
        """Delete vhost ``name`` with everything in it (nothing happens when it does not exist)."""

    @abstractmethod
    def users(self) -> dict[str, list[str]]:
        """User name -> tags."""

    @abstractmethod
    def put_user(self, name: str, password: str | None, tags: Sequence[str] | None = (),
                 exists: bool | None = None, grant: tuple[str, Permissions] | None = None) -> None:
        """Create or update user ``name``; ``password=None`` means no password (certificate login only).

        ``tags=None`` keeps an existing user's tags; ``exists`` saves a look-up when the caller knows;
        ``grant=(vhost, permissions)`` also sets the user's permissions there.
        """

    @abstractmethod
    def delete_user(self, name: str) -> None:
        """Delete user ``name`` (nothing happens when it does not exist)."""

    @abstractmethod
    def permissions(self, vhost: str) -> dict[str, Permissions]:
        """User name -> permissions on ``vhost``."""

    @abstractmethod
    def set_permissions(self, vhost: str, user: str, permissions: Permissions) -> None:
        """Give ``user`` ``permissions`` on ``vhost``."""

    @abstractmethod
    def link_status(self, kind: str, vhost: str) -> list[dict[str, Any]] | None:
        """The states of the ``"federation"`` links or ``"shovel"`` s on ``vhost``, as the broker reports
        them; None when this back-end cannot tell (the plugin's management pages are off)."""

    @abstractmethod
    def close_user_connections(self, user: str, reason: str) -> None:
        """Close every connection of ``user`` (its clients see ``reason`` and may connect again)."""

    @abstractmethod
    def topic_permissions(self, vhost: str) -> dict[str, dict[str, TopicPermissions]]:
        """User name -> exchange -> topic permissions (routing-key patterns) on ``vhost``."""

    @abstractmethod
    def set_topic_permissions(self, vhost: str, user: str, exchange: str,
                              permissions: TopicPermissions) -> None:
        """Limit the routing keys ``user`` may publish with (and bind to) on topic exchange ``exchange``."""

    @abstractmethod
    def clear_topic_permissions(self, vhost: str, user: str) -> None:
        """Remove every topic permission of ``user`` on ``vhost`` (nothing happens when there is none)."""

    @abstractmethod
    def queues(self, vhost: str) -> dict[str, dict[str, Any]]:
        """Queue name -> ``{"messages", "message_bytes", "durable", "policy"}`` on ``vhost``."""

    @abstractmethod
    def delete_queue(self, vhost: str, name: str) -> None:
        """Delete queue ``name`` with its messages and bindings (nothing happens when it does not exist)."""

    @abstractmethod
    def set_user_limits(self, user: str, limits: dict[str, int]) -> None:
        """Set ``user``'s limits (``max-connections``, ``max-channels``) broker-wide."""

    @abstractmethod
    def parameters(self, component: str, vhost: str) -> dict[str, Any]:
        """Name -> value of the runtime parameters of ``component`` (``federation-upstream``, ``shovel``)."""

    @abstractmethod
    def set_parameter(self, component: str, vhost: str, name: str, value: dict[str, Any]) -> None:
        """Create or replace runtime parameter ``name`` of ``component`` on ``vhost``."""

    @abstractmethod
    def clear_parameter(self, component: str, vhost: str, name: str) -> None:
        """Remove runtime parameter ``name`` (nothing happens when it does not exist)."""

    @abstractmethod
    def policies(self, vhost: str) -> dict[str, dict[str, Any]]:
        """Name -> ``{"pattern", "definition", "apply-to", "priority"}`` of the policies on ``vhost``."""

    @abstractmethod
    def set_policy(self, vhost: str, name: str, pattern: str, definition: dict[str, Any],
                   apply_to: str = "all", priority: int = 0) -> None:
        """Create or replace policy ``name`` on ``vhost``."""

    @abstractmethod
    def clear_policy(self, vhost: str, name: str) -> None:
        """Remove policy ``name`` (nothing happens when it does not exist)."""


class CtlAdmin(BrokerAdmin):
    """``rabbitmqctl`` on this host (``node`` names another local node)."""

    kind = "rabbitmqctl"

    def __init__(self, executable: str = "rabbitmqctl", node: str | None = None,
                 timeout: float = CTL_TIMEOUT) -> None:
        self.executable = executable
        self.node = node
        self.timeout = timeout

    def _run(self, *args: str, stdin: str | None = None) -> str:
        command = [self.executable, "-q", *(["-n", self.node] if self.node else []), *args]
        try:
            done = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=self.timeout,
                                  check=False)
        except FileNotFoundError:
            raise BrokerAdminError(f"{self.executable} not found: install RabbitMQ here, or enable the "
                                   "management plugin") from None
        except subprocess.TimeoutExpired:
            raise BrokerAdminError(f"{self.executable} {args[0]} did not finish within "
                                   f"{self.timeout:g} s") from None
        if done.returncode != 0:
            text = (done.stderr or done.stdout).strip()
            # 69 (EX_UNAVAILABLE) is also what "parameter does not exist" exits with
            absent = "does not exist" in text or "not found" in text.lower()
            if "unable to perform an operation on node" in text or (done.returncode == 69 and not absent):
                raise BrokerDown(f"the RabbitMQ node is not running (or {self.executable} may not reach it)")
            lines = [line.strip() for line in text.splitlines() if line.strip() and line.strip() != "Error:"]
            detail = " ".join(lines[:2]).removeprefix("Error: ") or f"exit code {done.returncode}"
            raise BrokerAdminError(f"{self.executable} {args[0]} failed: {detail}")
        return done.stdout

    def _json(self, *args: str) -> list[dict[str, Any]]:
        text = self._run(*args, "--formatter", "json").strip()
        if not text:
            return []
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise BrokerAdminError(f"unexpected output of {self.executable} {args[0]}: {exc}") from None
        return value if isinstance(value, list) else []

    def check(self) -> None:
        self._run("list_vhosts", "name")

    def vhosts(self) -> list[str]:
        return [row["name"] for row in self._json("list_vhosts", "name")]

    def add_vhost(self, name: str) -> None:
        self._run("add_vhost", name)  # succeeds when it exists

    def delete_vhost(self, name: str) -> None:
        try:
            self._run("delete_vhost", name)
        except BrokerAdminError as exc:
            if "does not exist" not in str(exc):
                raise

    def users(self) -> dict[str, list[str]]:
        return {row["user"]: list(row.get("tags") or []) for row in self._json("list_users")}

    def put_user(self, name: str, password: str | None, tags: Sequence[str] | None = (),
                 exists: bool | None = None, grant: tuple[str, Permissions] | None = None) -> None:
        secret = password if password is not None else base64.urlsafe_b64encode(_random(24)).decode()
        created = False
        if not exists:
            try:
                self._run("add_user", name, stdin=secret + "\n")
                created = True
            except BrokerAdminError as exc:
                if "already exists" not in str(exc):
                    raise
        calls: list[tuple[str, ...]] = []
        if not created and password is not None:
            calls.append(("change_password", name))
        if password is None:
            calls.append(("clear_password", name))
        if tags is not None and (created or tags):
            calls.append(("set_user_tags", name, *tags))
        if grant is not None:
            vhost, permissions = grant
            calls.append(("set_permissions", "-p", vhost, name, permissions.configure, permissions.write,
                          permissions.read))
        # each call starts an Erlang VM (a third of a second or more): independent ones run side by side
        self._run_all(calls, secret)

    def _run_all(self, calls: list[tuple[str, ...]], secret: str) -> None:
        def run(call: tuple[str, ...]) -> str:
            return self._run(*call, stdin=secret + "\n" if call[0] == "change_password" else None)

        if len(calls) <= 1:
            for call in calls:
                run(call)
            return
        with ThreadPoolExecutor(max_workers=len(calls)) as pool:
            for future in [pool.submit(run, call) for call in calls]:
                future.result()

    def delete_user(self, name: str) -> None:
        try:
            self._run("delete_user", name)
        except BrokerAdminError as exc:
            if "does not exist" not in str(exc):
                raise

    def permissions(self, vhost: str) -> dict[str, Permissions]:
        return {row["user"]: Permissions(row["configure"], row["write"], row["read"])
                for row in self._json("list_permissions", "-p", vhost)}

    def set_permissions(self, vhost: str, user: str, permissions: Permissions) -> None:
        self._run("set_permissions", "-p", vhost, user, permissions.configure, permissions.write,
                  permissions.read)

    def link_status(self, kind: str, vhost: str) -> list[dict[str, Any]] | None:
        rows = self._json("federation_status" if kind == "federation" else "shovel_status")
        return [row for row in rows if row.get("vhost") == vhost]

    def close_user_connections(self, user: str, reason: str) -> None:
        self._run("close_all_user_connections", user, reason)

    def topic_permissions(self, vhost: str) -> dict[str, dict[str, TopicPermissions]]:
        found: dict[str, dict[str, TopicPermissions]] = {}
        for row in self._json("list_topic_permissions", "-p", vhost):
            found.setdefault(row["user"], {})[row["exchange"]] = TopicPermissions(row["write"], row["read"])
        return found

    def set_topic_permissions(self, vhost: str, user: str, exchange: str,
                              permissions: TopicPermissions) -> None:
        self._run("set_topic_permissions", "-p", vhost, user, exchange, permissions.write, permissions.read)

    def clear_topic_permissions(self, vhost: str, user: str) -> None:
        self._absent_ok("clear_topic_permissions", "-p", vhost, user)

    def queues(self, vhost: str) -> dict[str, dict[str, Any]]:
        rows = self._json("list_queues", "-p", vhost, "name", "messages", "message_bytes", "durable",
                          "policy")
        return {row["name"]: {k: row.get(k) for k in ("messages", "message_bytes", "durable", "policy")}
                for row in rows}

    def delete_queue(self, vhost: str, name: str) -> None:
        self._absent_ok("delete_queue", "-p", vhost, name)

    def set_user_limits(self, user: str, limits: dict[str, int]) -> None:
        self._run("set_user_limits", user, json.dumps(limits))

    def parameters(self, component: str, vhost: str) -> dict[str, Any]:
        listed = self._json("list_parameters", "-p", vhost)
        rows = [row for row in listed if row.get("component") == component]
        return {row["name"]: _json_value(row.get("value")) for row in rows}

    def set_parameter(self, component: str, vhost: str, name: str, value: dict[str, Any]) -> None:
        self._run("set_parameter", "-p", vhost, component, name, json.dumps(value))

    def clear_parameter(self, component: str, vhost: str, name: str) -> None:
        self._absent_ok("clear_parameter", "-p", vhost, component, name)

    def policies(self, vhost: str) -> dict[str, dict[str, Any]]:
        return {row["name"]: {"pattern": row.get("pattern"), "definition": _json_value(row.get("definition")),
                              "apply-to": row.get("apply-to"), "priority": row.get("priority")}
                for row in self._json("list_policies", "-p", vhost)}

    def set_policy(self, vhost: str, name: str, pattern: str, definition: dict[str, Any],
                   apply_to: str = "all", priority: int = 0) -> None:
        self._run("set_policy", "-p", vhost, "--apply-to", apply_to, "--priority", str(priority), name,
                  pattern, json.dumps(definition))

    def clear_policy(self, vhost: str, name: str) -> None:
        self._absent_ok("clear_policy", "-p", vhost, name)

    def _absent_ok(self, *args: str) -> None:
        try:
            self._run(*args)
        except BrokerAdminError as exc:
            text = str(exc).lower()
            if "not found" not in text and "does not exist" not in text and "no_such" not in text:
                raise


class HttpAdmin(BrokerAdmin):
    """The management plugin's HTTP API at ``url`` (``http[s]://host:15672``) as ``user``."""

    kind = "management API"

    def __init__(self, url: str, user: str, password: str, context: ssl.SSLContext | None = None,
                 timeout: float = HTTP_TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self._auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self._context = context
        self.timeout = timeout

    def _request(self, method: str, path: str, body: Any = None,
                 headers: dict[str, str] | None = None) -> Any:
        data = json.dumps(body).encode("utf-8") if body is not None else None
        headers = {"Authorization": self._auth, "Content-Type": "application/json", **(headers or {})}
        request = urllib.request.Request(f"{self.url}/api/{path}", data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._context) as response:
                text = response.read().decode("utf-8")
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and method in ("DELETE", "GET"):
                return None
            detail = exc.read().decode("utf-8", "replace")[:200]
            raise BrokerAdminError(f"{method} {path}: HTTP {exc.code} {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise BrokerDown(f"the management API at {self.url} does not answer: "
                             f"{getattr(exc, 'reason', exc)}") from None
        return json.loads(text) if text.strip() else None

    def check(self) -> None:
        self._request("GET", "overview")

    def vhosts(self) -> list[str]:
        return [row["name"] for row in self._request("GET", "vhosts") or []]

    def add_vhost(self, name: str) -> None:
        self._request("PUT", f"vhosts/{_q(name)}", {})

    def delete_vhost(self, name: str) -> None:
        self._request("DELETE", f"vhosts/{_q(name)}")

    def users(self) -> dict[str, list[str]]:
        return {row["name"]: _tags(row.get("tags")) for row in self._request("GET", "users") or []}

    def put_user(self, name: str, password: str | None, tags: Sequence[str] | None = (),
                 exists: bool | None = None, grant: tuple[str, Permissions] | None = None) -> None:
        if tags is None:
            tags = self.users().get(name, [])
        body: dict[str, Any] = {"tags": ",".join(tags)}
        if password is None:
            body["password_hash"] = ""
        else:
            body["password"] = password
        self._request("PUT", f"users/{_q(name)}", body)
        if grant is not None:
            self.set_permissions(grant[0], name, grant[1])

    def delete_user(self, name: str) -> None:
        self._request("DELETE", f"users/{_q(name)}")

    def permissions(self, vhost: str) -> dict[str, Permissions]:
        rows = self._request("GET", f"vhosts/{_q(vhost)}/permissions") or []
        return {row["user"]: Permissions(row["configure"], row["write"], row["read"]) for row in rows}

    def set_permissions(self, vhost: str, user: str, permissions: Permissions) -> None:
        body = {"configure": permissions.configure, "write": permissions.write, "read": permissions.read}
        self._request("PUT", f"permissions/{_q(vhost)}/{_q(user)}", body)

    def link_status(self, kind: str, vhost: str) -> list[dict[str, Any]] | None:
        pages = "federation-links" if kind == "federation" else "shovels"
        return self._request("GET", f"{pages}/{_q(vhost)}")

    def close_user_connections(self, user: str, reason: str) -> None:
        self._request("DELETE", f"connections/username/{_q(user)}", headers={"X-Reason": reason})

    def topic_permissions(self, vhost: str) -> dict[str, dict[str, TopicPermissions]]:
        found: dict[str, dict[str, TopicPermissions]] = {}
        for row in self._request("GET", f"vhosts/{_q(vhost)}/topic-permissions") or []:
            found.setdefault(row["user"], {})[row["exchange"]] = TopicPermissions(row["write"], row["read"])
        return found

    def set_topic_permissions(self, vhost: str, user: str, exchange: str,
                              permissions: TopicPermissions) -> None:
        body = {"exchange": exchange, "write": permissions.write, "read": permissions.read}
        self._request("PUT", f"topic-permissions/{_q(vhost)}/{_q(user)}", body)

    def clear_topic_permissions(self, vhost: str, user: str) -> None:
        self._request("DELETE", f"topic-permissions/{_q(vhost)}/{_q(user)}")

    def queues(self, vhost: str) -> dict[str, dict[str, Any]]:
        rows = self._request("GET", f"queues/{_q(vhost)}") or []
        return {row["name"]: {k: row.get(k) for k in ("messages", "message_bytes", "durable", "policy")}
                for row in rows}

    def delete_queue(self, vhost: str, name: str) -> None:
        self._request("DELETE", f"queues/{_q(vhost)}/{_q(name)}")

    def set_user_limits(self, user: str, limits: dict[str, int]) -> None:
        for name, value in limits.items():
            self._request("PUT", f"user-limits/{_q(user)}/{_q(name)}", {"value": value})

    def parameters(self, component: str, vhost: str) -> dict[str, Any]:
        rows = self._request("GET", f"parameters/{_q(component)}/{_q(vhost)}") or []
        return {row["name"]: row.get("value") for row in rows}

    def set_parameter(self, component: str, vhost: str, name: str, value: dict[str, Any]) -> None:
        body = {"component": component, "vhost": vhost, "name": name, "value": value}
        self._request("PUT", f"parameters/{_q(component)}/{_q(vhost)}/{_q(name)}", body)

    def clear_parameter(self, component: str, vhost: str, name: str) -> None:
        self._request("DELETE", f"parameters/{_q(component)}/{_q(vhost)}/{_q(name)}")

    def policies(self, vhost: str) -> dict[str, dict[str, Any]]:
        rows = self._request("GET", f"policies/{_q(vhost)}") or []
        return {row["name"]: {"pattern": row.get("pattern"), "definition": row.get("definition"),
                              "apply-to": row.get("apply-to"), "priority": row.get("priority")}
                for row in rows}

    def set_policy(self, vhost: str, name: str, pattern: str, definition: dict[str, Any],
                   apply_to: str = "all", priority: int = 0) -> None:
        body = {"pattern": pattern, "definition": definition, "apply-to": apply_to, "priority": priority}
        self._request("PUT", f"policies/{_q(vhost)}/{_q(name)}", body)

    def clear_policy(self, vhost: str, name: str) -> None:
        self._request("DELETE", f"policies/{_q(vhost)}/{_q(name)}")


def broker_admin(settings: BrokerSettings, user: str | None = None, password: str | None = None,
                 ctl: str = "rabbitmqctl") -> BrokerAdmin:
    """The management API when it answers at ``settings.mgmt_port`` (with ``user``/``password``), else
    ``rabbitmqctl`` when the broker is on this host; :class:`BrokerAdminError` when neither can be used.
    """
    port = settings.mgmt_port
    if port and user and password is not None and port_open(settings.host, port):
        scheme = "https" if settings.ssl else "http"
        context = ssl.create_default_context(cafile=settings.cafile) if settings.ssl else None
        return HttpAdmin(f"{scheme}://{settings.host}:{port}", user, password, context)
    if shutil.which(ctl) and is_local_host(settings.host):
        return CtlAdmin(ctl)
    raise BrokerAdminError(f"cannot administer the broker at {settings.host}: the management plugin does "
                           f"not answer on port {port} and {ctl} is not available for a broker on this host")


def port_open(host: str, port: int, timeout: float = 2.0) -> bool:
    """Whether a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def is_local_host(host: str) -> bool:
    """Whether ``host`` names this machine."""
    if host in ("localhost", "127.0.0.1", "::1", socket.gethostname(), socket.getfqdn()):
        return True
    try:
        return socket.gethostbyname(host).startswith("127.")
    except OSError:
        return False


def declare_exchanges(settings: BrokerSettings) -> None:
    """Declare the ``undeliverable`` fanout and the ``volttron`` topic exchange (its alternate) over AMQP.

    ``settings`` must log in as a user allowed to configure them. A blocking pika connection: for
    tools, not for a running platform (whose router declares them itself).
    """
    import pika
    import pika.exceptions

    from volttron.client.messagebus.rmq_login import pika_credentials, ssl_options

    parameters = pika.ConnectionParameters(settings.host, settings.port, settings.vhost,
                                           pika_credentials(settings), ssl_options=ssl_options(settings),
                                           connection_attempts=1, socket_timeout=10,
                                           blocked_connection_timeout=30)
    try:
        connection = pika.BlockingConnection(parameters)
    except pika.exceptions.AMQPConnectionError as exc:
        if port_open(settings.host, settings.port):
            raise BrokerAdminError(f"the broker at {settings.redacted()} refused {settings.username}: "
                                   f"{exc!r}") from None
        raise BrokerDown(f"no broker answers at {settings.redacted()}") from None
    try:
        channel = connection.channel()
        channel.exchange_declare(ALTERNATE_EXCHANGE, "fanout", durable=True)
        channel.exchange_declare(EXCHANGE, "topic", durable=True,
                                 arguments={"alternate-exchange": ALTERNATE_EXCHANGE})
    except pika.exceptions.AMQPChannelError as exc:
        raise BrokerAdminError(f"cannot declare the exchanges on vhost {settings.vhost!r}: {exc!r} (an "
                               "exchange of that name with other settings exists?)") from None
    finally:
        if connection.is_open:
            connection.close()


def _q(name: str) -> str:
    return quote(name, safe="")


def _json_value(value: Any) -> Any:
    """A parameter or policy value as ``rabbitmqctl`` lists it: JSON text (sometimes) or already decoded."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _tags(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(t) for t in value]
    return [t for t in str(value or "").split(",") if t]


def _random(n: int) -> bytes:
    import os

    return os.urandom(n)
