"""Linking RabbitMQ instances: ``vcfg rabbitmq federation`` and ``vcfg rabbitmq shovel``.

See docs/protocol.md §6.5.

Both commands read a YAML file (or one link given by flags) and set runtime parameters of the broker
plugins on *this* instance's vhost; the plugins then hold AMQP connections to the other instance.

What the files say and the links they make: :mod:`~volttron.client.messagebus.rmq_link_config`.

Who sent a linked message (see :func:`~volttron.client.messagebus.rmq_wire.message_origin`): a
federation link is made with ``trust-user-id: true``, so the receiver sees the user id the
upstream broker checked (``<remote instance>.<identity>``); a shovel publishes with the user id set
to its own login on the remote broker (``dest-publish-properties``), which that broker checks, so
the receiver knows which instance's shovel delivered it. Neither may claim one of the receiver's
own users; such messages are dropped. No user gets the ``impersonator`` tag.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from volttron.client.messagebus.rmq_admin import (
    BrokerAdmin,
    BrokerAdminError,
    Permissions,
    TopicPermissions,
    is_local_host,
)
from volttron.client.messagebus.rmq_config import AMQP_PORT, AMQPS_PORT, BrokerSettings
from volttron.client.messagebus.rmq_link_config import RemoteBroker, Shovel, Upstream
from volttron.client.messagebus.rmq_wire import EXCHANGE, PUBSUB_KEY, ROUTER
from volttron.utils.errors import VolttronError

FEDERATION_COMPONENT = "federation-upstream"
SHOVEL_COMPONENT = "shovel"
FEDERATION_POLICY = "volttron-federation"
FEDERATION_PATTERN = f"^{EXCHANGE}"
PLUGINS = ("rabbitmq_federation", "rabbitmq_shovel")
LINK_TIMEOUT = 30.0


class BrokerLinkError(VolttronError):
    """A federation or shovel cannot be set up, or its link did not start."""


# -- the broker plugins --------------------------------------------------------------------------

def ensure_plugins(settings: BrokerSettings, plugins: Iterable[str] = PLUGINS,
                   command: str = "rabbitmq-plugins") -> str | None:
    """Enable ``plugins`` on a broker on this host (idempotent; the broker stays up).

    Returns what was done, or None when it cannot be done from here (another host's broker: its
    administrator enables plugins). Raises :class:`BrokerLinkError` saying what to run when enabling fails.
    """
    wanted = list(plugins)
    if not is_local_host(settings.host):
        return None
    executable = shutil.which(command)
    advice = f"run 'rabbitmq-plugins enable {' '.join(wanted)}' on the broker's host as root"
    if executable is None:
        raise BrokerLinkError(f"{command} not found, cannot enable {', '.join(wanted)}: {advice}")
    try:
        done = subprocess.run([executable, "-q", "enable", *wanted], capture_output=True, text=True,
                              timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrokerLinkError(f"cannot enable {', '.join(wanted)} ({exc}): {advice}") from None
    if done.returncode != 0:
        text = " ".join(line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip())
        why = text[:200] or f"exit {done.returncode}"
        raise BrokerLinkError(f"cannot enable {', '.join(wanted)} ({why}): {advice}")
    return f"enabled broker plugins {', '.join(wanted)}"


class StatusUnavailable(BrokerLinkError):
    """The broker cannot tell the state of its links (a plugin's management part is missing)."""


class PluginMissing(BrokerLinkError):
    """The broker does not know the parameters of a plugin that is not enabled."""


def _set_parameter(admin: BrokerAdmin, component: str, vhost: str, name: str, value: dict[str, Any],
                   plugin: str) -> None:
    try:
        admin.set_parameter(component, vhost, name, value)
    except BrokerAdminError as exc:
        text = str(exc)
        if "component" in text.lower() or "not found" in text.lower() or "404" in text:
            raise PluginMissing(f"the broker does not know {component!r} parameters: run 'rabbitmq-plugins "
                                f"enable {plugin}' on the broker's host ({text})") from None
        raise


def _set_parameters(admin: BrokerAdmin, local: BrokerSettings, component: str, plugin: str,
                    values: list[tuple[str, dict[str, Any]]], report: LinkReport,
                    plugins_command: str) -> None:
    """Set ``values`` (name, value); a missing plugin is enabled first when this host can."""
    for index, (name, value) in enumerate(values):
        try:
            _set_parameter(admin, component, local.vhost, name, value, plugin)
        except PluginMissing:
            if index or not ensure_plugins(local, (plugin,), plugins_command):
                raise
            report.done.append(f"enabled broker plugin {plugin}")
            _set_parameter(admin, component, local.vhost, name, value, plugin)


def check_remote_vhost(admin: BrokerAdmin, local: BrokerSettings, remote: RemoteBroker) -> None:
    """When ``remote`` is on the local broker, fail now if its vhost does not exist there."""
    same_broker = (is_local_host(remote.host) and is_local_host(local.host)
                   and remote.port in (local.port, AMQP_PORT if local.port == AMQPS_PORT else AMQPS_PORT))
    if same_broker and remote.vhost not in admin.vhosts():
        raise BrokerLinkError(f"remote vhost {remote.vhost!r} does not exist on the broker at "
                        f"{remote.host}:{remote.port} (run 'vcfg rabbitmq single' for that instance first)")


# -- applying ----------------------------------------------------------------------------------

@dataclass
class LinkReport:
    """What :func:`apply_federation` / :func:`apply_shovels` did."""

    done: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def apply_federation(admin: BrokerAdmin, local: BrokerSettings, upstreams: list[Upstream],
                     timeout: float = LINK_TIMEOUT, plugins_command: str = "rabbitmq-plugins") -> LinkReport:
    """Set the upstreams and the federation policy on the local vhost, then wait for the links.

    The federation plugin is enabled when the broker lacks it and is on this host
    (:func:`ensure_plugins`); :class:`BrokerLinkError` says what failed (nothing of this run is kept).
    """
    report = LinkReport()
    vhost = local.vhost
    for upstream in upstreams:
        check_remote_vhost(admin, local, upstream.remote)
    before = admin.parameters(FEDERATION_COMPONENT, vhost)
    with _undo_on_failure(admin, FEDERATION_COMPONENT, vhost, before, [u.name for u in upstreams]):
        _set_parameters(admin, local, FEDERATION_COMPONENT, "rabbitmq_federation",
                        [(u.name, u.parameter()) for u in upstreams], report, plugins_command)
        report.done.extend(f"federation upstream {u.name} -> {u.remote.redacted()}" for u in upstreams)
        admin.set_policy(vhost, FEDERATION_POLICY, FEDERATION_PATTERN, {"federation-upstream-set": "all"},
                         apply_to="exchanges")
        report.done.append(f"policy {FEDERATION_POLICY}: exchange {EXCHANGE!r} federated from every upstream")
        try:
            names = [u.name for u in upstreams]
            wait_for_links(link_status_reader(admin, "federation"), vhost, names, timeout)
            report.done.append("federation link(s) running")
        except StatusUnavailable as exc:
            report.notes.append(str(exc))
    return report


def apply_shovels(admin: BrokerAdmin, local: BrokerSettings, shovels: list[Shovel],
                  timeout: float = LINK_TIMEOUT, plugins_command: str = "rabbitmq-plugins") -> LinkReport:
    """Set the shovels on the local vhost, then wait for them to run (plugin, failures: as
    :func:`apply_federation`)."""
    report = LinkReport()
    for remote in {s.remote for s in shovels}:
        check_remote_vhost(admin, local, remote)
    before = admin.parameters(SHOVEL_COMPONENT, local.vhost)
    with _undo_on_failure(admin, SHOVEL_COMPONENT, local.vhost, before, [s.name for s in shovels]):
        _set_parameters(admin, local, SHOVEL_COMPONENT, "rabbitmq_shovel",
                        [(s.name, s.parameter(local.vhost)) for s in shovels], report, plugins_command)
        report.done.extend(f"shovel {s.name}: {s.source_key} -> {s.remote.redacted()}" for s in shovels)
        try:
            names = [s.name for s in shovels]
            wait_for_links(link_status_reader(admin, "shovel"), local.vhost, names, timeout)
            report.done.append("shovel(s) running")
        except StatusUnavailable as exc:
            report.notes.append(str(exc))
    return report


@contextlib.contextmanager
def _undo_on_failure(admin: BrokerAdmin, component: str, vhost: str, before: dict[str, Any],
                     names: list[str]) -> Iterator[None]:
    """Put the parameters ``names`` back as they were when the block fails (a broken link keeps
    retrying forever otherwise); the failure's message says so."""
    try:
        yield
    except BrokerLinkError as exc:
        for name in names:
            with contextlib.suppress(BrokerAdminError):
                if name in before:
                    admin.set_parameter(component, vhost, name, before[name])
                else:
                    admin.clear_parameter(component, vhost, name)
        if component == FEDERATION_COMPONENT and not before:
            with contextlib.suppress(BrokerAdminError):
                admin.clear_policy(vhost, FEDERATION_POLICY)
        raise BrokerLinkError(f"{exc}; the link was not kept") from None


def remove_links(admin: BrokerAdmin, vhost: str, kind: str, name: str) -> list[str]:
    """Remove federation upstream or shovel(s) ``name`` (exact, or every name starting ``name-``).

    The federation policy goes with the last upstream. Returns the names removed; :class:`BrokerLinkError`
    when none matches.
    """
    component = FEDERATION_COMPONENT if kind == "federation" else SHOVEL_COMPONENT
    existing = admin.parameters(component, vhost)
    names = [n for n in existing if n == name or n.startswith(f"{name}-")]
    if not names:
        have = ", ".join(sorted(existing)) or "none"
        raise BrokerLinkError(f"no {kind} named {name!r} on vhost {vhost!r} (there: {have})")
    for found in names:
        admin.clear_parameter(component, vhost, found)
    if kind == "federation" and not set(existing) - set(names):
        admin.clear_policy(vhost, FEDERATION_POLICY)
    return names


def link_user_permissions(kind: str) -> Permissions:
    """What the other instance's link user needs on this vhost.

    ``federation``: the upstream side, where the link declares ``federation: ...`` objects and reads
    the ``volttron`` exchange; ``shovel``: the destination side, where it only publishes to ``volttron``.
    """
    if kind == "federation":
        return Permissions(configure="^federation: .*$", write="^federation: .*$",
                           read=f"^({EXCHANGE}|federation: .*)$")
    return Permissions(configure="^$", write=f"^{EXCHANGE}$", read="^$")


LINK_TAG = "volttron-link"
"""Tag of the users other instances' links log in as (the platform keeps their topic permissions)."""


def link_topic_permissions(kind: str, instance: str, publish_pattern: str | None = None) -> TopicPermissions:
    """The topic permissions on ``volttron`` of a ``kind`` link user of instance ``instance`` (here).

    A link speaks for its own platform only, like an agent of that platform:

    * ``shovel`` (publishes here): never a pub/sub key of this instance (``__pubsub__.<instance>.…``)
      nor a message to this instance's router; ``publish_pattern`` (the platform adds its protected
      topics, :class:`~volttron.server.router.rmq.users.BrokerUsers`) must match too. It binds nothing.
    * ``federation`` (binds here, the upstream side): no binding key that could match this
      instance's peers' routing keys (``<instance>.…``, or a leading ``*`` or ``#``). It publishes
      nothing.
    """
    own = re.escape(instance)
    if kind == "federation":
        return TopicPermissions(write="^$", read=rf"^(?!(?:{own}|\*|#)(?:\.|$))")
    write = rf"^(?!{re.escape(PUBSUB_KEY)}\.{own}\.)(?!{own}\.{ROUTER}$)"
    if publish_pattern:
        write += f"(?={publish_pattern})"
    return TopicPermissions(write=write, read="^$")


def grant_link_user(admin: BrokerAdmin, vhost: str, user: str, password: str | None, kind: str,
                    instance: str) -> None:
    """Create (or update) the user another instance's federation or shovel logs in as, on ``vhost`` of
    ``instance``, with the topic permissions of :func:`link_topic_permissions` (tagged ``volttron-link``).

    ``password=None``: certificate login only.
    """
    admin.put_user(user, password, [LINK_TAG], grant=(vhost, link_user_permissions(kind)))
    admin.set_topic_permissions(vhost, user, EXCHANGE, link_topic_permissions(kind, instance))


# -- link status ---------------------------------------------------------------------------------

StatusReader = Callable[[str], dict[str, tuple[str, str]]]
"""vhost -> {link name: (state, problem)}; state ``running`` is up."""


def link_status_reader(admin: BrokerAdmin, kind: str) -> StatusReader:
    """How to read federation link or shovel states on ``admin``'s broker."""

    def read(vhost: str) -> dict[str, tuple[str, str]]:
        rows = admin.link_status(kind, vhost)
        if rows is None:
            path = "federation-links" if kind == "federation" else "shovels"
            raise StatusUnavailable(f"link status not checked: the management API has no {path} "
                                    f"(enable rabbitmq_{kind}_management)")
        return _states(kind, rows)

    return read


def _states(kind: str, rows: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    for row in rows:
        if kind == "federation":
            name = str(row.get("upstream") or "")
            state = str(row.get("status") or "")
            problem = describe_error(row.get("error")) if row.get("error") else ""
        else:
            name = str(row.get("name") or "")
            state = str(row.get("state") or "")
            problem = describe_error(row.get("termination_reason") or row.get("reason") or "")
        found[name] = (state, problem)
    return found


def describe_error(value: Any) -> str:
    """A link error as ``rabbitmqctl`` reports it (atoms, lists of character codes) as text."""
    if isinstance(value, list):
        if value and all(isinstance(v, int) and 0 <= v < 0x110000 for v in value):
            return "".join(chr(v) for v in value)
        return ": ".join(part for part in (describe_error(v) for v in value) if part)
    if isinstance(value, dict):
        return ", ".join(f"{k}={describe_error(v)}" for k, v in value.items())
    return "" if value is None else str(value)


def wait_for_links(status: StatusReader, vhost: str, names: list[str], timeout: float,
                   poll: float = 0.25) -> None:
    """Return once every link in ``names`` runs; :class:`BrokerLinkError` naming the first that fails."""
    deadline = time.monotonic() + timeout
    states: dict[str, tuple[str, str]] = {}
    while True:
        try:
            states = status(vhost)
        except BrokerAdminError as exc:
            raise BrokerLinkError(f"cannot read the link status: {exc}") from None
        for name in names:
            state, problem = states.get(name, ("", ""))
            if state in ("error", "terminated"):
                raise BrokerLinkError(f"link {name} failed: {_advice(problem or state)}")
        if all(states.get(name, ("",))[0] == "running" for name in names):
            return
        if time.monotonic() > deadline:
            waiting = [f"{n} ({states.get(n, ('not started',))[0] or 'not started'})" for n in names
                       if states.get(n, ("",))[0] != "running"]
            raise BrokerLinkError(f"link(s) not running after {timeout:g} s: {', '.join(waiting)} (is the "
                                  "remote broker reachable, and do the remote vhost and user exist?)")
        time.sleep(poll)


def _advice(problem: str) -> str:
    lowered = problem.lower()
    if "auth_failure" in lowered or "access_refused" in lowered:
        return f"{problem} (wrong user or password for the remote broker?)"
    if "not_allowed" in lowered:
        return f"{problem} (the remote vhost does not exist, or the user has no permission on it)"
    return problem


__all__ = ["BrokerLinkError", "LinkReport", "apply_federation", "apply_shovels", "ensure_plugins",
           "grant_link_user", "link_user_permissions", "remove_links", "wait_for_links"]
