"""The platform's life: start-up, running, and a clean stop (docs/protocol.md §3.2).

Start-up order: the home (in secure mode with its permission layout, :mod:`.aip.agent_users`) and
the single-instance lock; what an earlier run of this home left behind when it died (its agents'
processes, :mod:`.aip.leftovers`; its work folders, :mod:`.aip.work_folder`); the platform keys,
``auth.json`` entries and ``known_hosts``; the ZAP handler; the ROUTER socket with the VIP router
and the pub/sub service; then the in-process services, in the order given; then ``VOLTTRON_PID``
(the platform is ready).
Stopping undoes it in reverse: services, router, ZAP handler, PID file and lock.

In-process services plug in as *service factories*: callables that take the
:class:`PlatformContext` and return an object with ``start()`` and ``stop()``. A service is an agent
with a well-known identity (:mod:`volttron.server.identities`) that connects to
``context.router_address`` (``inproc://vip``) through ``context.zmq_context`` without
authentication. ``start()`` runs in the platform's main greenlet after the router serves and should
return promptly (spawn greenlets for the work; a start that takes longer than
:attr:`Platform.SERVICE_START_TIMEOUT` fails the platform's start); ``stop()`` is given
:attr:`Platform.SERVICE_STOP_TIMEOUT` seconds.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gevent
import gevent.event

from volttron.server import __version__
from volttron.server.aip.agent_users import secure_home
from volttron.server.aip.leftovers import end_marked
from volttron.server.aip.work_folder import clear_work_folder
from volttron.server.context import PlatformContext, PlatformService, ServiceFactory
from volttron.server.options import PlatformOptions
from volttron.server.platform_home import (
    InstanceLock,
    control_connection_keystore,
    platform_auth_entries,
    platform_keystore,
    prepare_home,
)
from volttron.server.router.routing import VipRouter
from volttron.server.router.zmq_router import (
    INPROC_ADDRESS,
    RouterSettings,
    ZmqRouterSocket,
    bind_address,
    make_context,
)
from volttron.server.services.auth.authfile import ensure_entries
from volttron.server.services.auth.identity_claims import IdentityClaims
from volttron.server.services.auth.policy import AuthPolicy
from volttron.server.services.auth.zap_zmq import ZapHandler
from volttron.server.services.pubsub.protected import PROTECTED_TOPICS_FILE, ProtectedTopics
from volttron.server.services.pubsub.service import PubSubService
from volttron.utils.errors import VolttronError
from volttron.utils.home import auth_file_path, known_hosts_path
from volttron.utils.keystore import KnownHosts

_log = logging.getLogger(__name__)


class PlatformError(VolttronError):
    """The platform cannot start (the message says why)."""


class Platform:
    """One running platform; see the module docstring. ``run()`` blocks until it is asked to stop."""

    SERVICE_START_TIMEOUT = 30.0
    SERVICE_STOP_TIMEOUT = 10.0

    def __init__(self, options: PlatformOptions, services: Sequence[ServiceFactory] = (), *,
                 shared_context: bool = True) -> None:
        self.options = options
        self._factories = list(services)
        self._shared_context = shared_context
        self._stop_requested = gevent.event.Event()
        self._lock = InstanceLock(options.home)
        self._zap: ZapHandler | None = None
        self._rabbit: Any = None
        """The RabbitMQ side of the router with ``--message-bus rmq`` (:mod:`.router.rmq.router`)."""
        self._external: Any = None
        """Routing to other ZeroMQ platforms (:mod:`.services.external`)."""
        self._socket: ZmqRouterSocket | None = None
        self.router: VipRouter | None = None
        self.pubsub: PubSubService | None = None
        self.context: PlatformContext | None = None
        self._services: list[PlatformService] = []
        self._started = False
        self._failure: str | None = None

    # -- life cycle ----------------------------------------------------------------------------
    def run(self) -> None:
        """Start, wait for a stop request, stop; :class:`PlatformError` if the router failed meanwhile."""
        self.start()
        try:
            self._stop_requested.wait()
        finally:
            self.shutdown()
        if self._failure is not None:
            raise PlatformError(self._failure)

    def request_stop(self) -> None:
        """Ask :meth:`run` to return (safe from signal handlers and any greenlet)."""
        self._stop_requested.set()

    def wait_stop_requested(self, timeout: float | None = None) -> bool:
        """Block until a stop is requested; False on timeout."""
        return self._stop_requested.wait(timeout)

    def start(self) -> None:
        """Bring the platform up; on failure everything started so far is stopped again."""
        if self._started:
            raise PlatformError("the platform is already started")
        self._started = True
        try:
            self._start()
        except BaseException:
            self.shutdown()
            raise

    def _start(self) -> None:
        opts = self.options
        home = opts.home
        prepare_home(home)
        self._lock.acquire()
        _clear_leftovers(home)
        if opts.secure_agent_users:
            secure_home(home)
        serverkey, secret, policy = self._setup_auth()
        protected = ProtectedTopics(home / PROTECTED_TOPICS_FILE)
        local = opts.vip_local_address
        zmq_context = make_context(shared=self._shared_context)
        claims = IdentityClaims(policy) if policy is not None else None
        if claims is not None:
            self._zap = ZapHandler(zmq_context, claims.zap_policy)  # type: ignore[arg-type]
            self._zap.start()
        identity = str(uuid.uuid4()).encode("ascii")
        self._socket = ZmqRouterSocket(
            RouterSettings(addresses=(local, *opts.vip_addresses), secret_key=secret, msgdebug=opts.msgdebug,
                           max_message_size=opts.max_message_size,
                           max_queued_bytes_per_peer=opts.max_queued_bytes_per_peer,
                           max_queued_bytes=opts.max_queued_bytes,
                           peer_overflow_timeout=opts.peer_overflow_timeout,
                           claim_timeout=opts.identity_claim_timeout,
                           identity_check=claims.check if claims is not None else None),
            zmq_context, identity)
        self._socket.bind()
        self.router = VipRouter(identity, self._socket.send, queries=self._queries(serverkey),
                                on_quit=self.request_stop)
        self.router.add_drop_listener(self._socket.forget)
        self.pubsub = PubSubService(
            self.router, protected=protected if opts.auth_enabled else ProtectedTopics(),
            capabilities=policy.capabilities if policy is not None else None,
            max_subscriptions=opts.max_subscriptions_per_peer)
        self.pubsub.attach()
        route = self.router.route
        if opts.message_bus == "rmq":  # the same router, also reachable through the broker
            from volttron.server.router.rmq.router import platform_broker_settings, start_rabbit_router

            broker = platform_broker_settings(home, opts.instance_name)
            self._rabbit = start_rabbit_router(self.router, self._socket.send, broker, self.pubsub, home=home,
                                               keys=(serverkey, secret))
            route = self._rabbit.route_zmq
        self._socket.serve(route, self.router.drop_peer).link_exception(self._router_died)
        if opts.message_bus == "zmq":  # RabbitMQ platforms link brokers instead (federation, shovel)
            from volttron.server.services.external.zmq_links import start_external_routing

            self._external = start_external_routing(
                self.router, self.pubsub, home=home, instance_name=opts.instance_name, context=zmq_context,
                keys=(serverkey, secret) if serverkey is not None and secret is not None else None,
                user_of=self._socket.user_of)
        self.context = PlatformContext(
            home=home, instance_name=opts.instance_name, router_address=INPROC_ADDRESS,
            zmq_context=zmq_context, serverkey=serverkey, local_address=local, addresses=opts.vip_addresses,
            auth_enabled=opts.auth_enabled, message_bus=opts.message_bus, request_stop=self.request_stop,
            secure_agent_users=opts.secure_agent_users, isolate_agents=opts.isolate_agents)
        for factory in self._factories:
            service = factory(self.context)
            try:
                with gevent.Timeout(self.SERVICE_START_TIMEOUT):
                    service.start()
            except gevent.Timeout:
                raise PlatformError(f"service {service!r} did not start within "
                                    f"{self.SERVICE_START_TIMEOUT:.0f} s") from None
            self._services.append(service)
        self._lock.write_pid()
        _log.info("platform %s ready in %s: %s (auth %s%s)", opts.instance_name, home,
                  ", ".join(self._socket.bound), "enabled" if opts.auth_enabled else "DISABLED",
                  "; secure mode: each agent runs as its own system user" if opts.secure_agent_users else "")

    def _router_died(self, greenlet: gevent.Greenlet) -> None:
        # the loop only ends on an error libzmq should never give; a platform that no longer routes
        # must not look alive
        self._failure = f"the router stopped: {greenlet.exception!r}"
        _log.critical("%s; shutting down", self._failure)
        self.request_stop()

    def _setup_auth(self) -> tuple[str | None, str | None, AuthPolicy | None]:
        opts = self.options
        if not opts.auth_enabled:
            _log.warning("AUTHENTICATION IS DISABLED: any process that can reach %s may connect, "
                         "unencrypted, and no capability is checked. Use --auth-disabled only on a trusted "
                         "network.",
                         ", ".join((opts.vip_local_address, *opts.vip_addresses)))
            return None, None, None
        keys = platform_keystore(opts.home).keypair
        control = control_connection_keystore(opts.home).keypair
        ensure_entries(auth_file_path(opts.home), platform_auth_entries(keys.public, control.public))
        policy = AuthPolicy(auth_file_path(opts.home))
        known_hosts = KnownHosts(known_hosts_path(opts.home))
        for address in (opts.vip_local_address, *opts.vip_addresses):
            known_hosts.add(bind_address(address), keys.public)
        return keys.public, keys.secret, policy

    def _queries(self, serverkey: str | None) -> dict[str, Any]:
        opts = self.options
        bases = [bind_address(a) for a in opts.vip_addresses]
        return {
            "addresses": bases or [bind_address(opts.vip_local_address)],
            "local_address": bind_address(opts.vip_local_address),
            "serverkey": serverkey,
            "instance-name": opts.instance_name,
            "message-bus": opts.message_bus,
            "platform-version": __version__,
            "bind-web-address": opts.bind_web_address,
            "agent-monitor-frequency": opts.agent_monitor_frequency,
            "volttron-central-address": opts.volttron_central_address,
            "volttron-central-serverkey": opts.volttron_central_serverkey,
        }

    def shutdown(self) -> None:
        """Stop services (newest first), the router, the ZAP handler; remove the PID file; unlock."""
        while self._services:
            service = self._services.pop()
            try:
                with gevent.Timeout(self.SERVICE_STOP_TIMEOUT):
                    service.stop()
            except gevent.Timeout:
                _log.error("service %r did not stop within %.0f s", service, self.SERVICE_STOP_TIMEOUT)
            except Exception:
                _log.exception("service %r failed to stop", service)
        if self._external is not None:
            self._external.stop()
            self._external = None
        if self._rabbit is not None:
            self._rabbit.close()
            self._rabbit = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._zap is not None:
            self._zap.stop()
            self._zap = None
        self._lock.release()
        if self._started:
            _log.info("platform stopped")

    def statistics(self) -> dict[str, Any]:
        """Counts of the router, its socket, pub/sub and authentication, for status output."""
        stats: dict[str, Any] = {}
        if self.router is not None:
            stats["router"] = self.router.statistics()
        if self._socket is not None:
            stats["socket"] = self._socket.statistics()
        if self.pubsub is not None:
            stats["pubsub"] = self.pubsub.statistics()
        if self._zap is not None:
            stats["auth"] = self._zap.statistics()
        if self._rabbit is not None:
            stats["rabbitmq"] = self._rabbit.statistics()
        if self._external is not None:
            stats["external"] = self._external.statistics()
        return stats


def _clear_leftovers(home: Path) -> None:
    """End the agent processes and remove the work folders an earlier run of this home left behind.

    Runs with the instance lock held, before the router binds: an old agent cannot hold its identity
    against the new one. Processes get SIGTERM, then SIGKILL after 2 s (a blocking wait, before any
    greenlet of the platform runs).
    """
    report = end_marked(home)
    if report.found:
        _log.warning("ended %d agent process(es) an earlier platform of %s left running (%d with SIGKILL%s)",
                     len(report.found), home, len(report.killed),
                     f"; {len(report.left)} would not die: {report.left}" if report.left else "")
    try:
        removed = clear_work_folder(home)
    except OSError as exc:
        raise PlatformError(f"cannot clear the work folder of {home}: {exc}") from None
    if removed:
        _log.info("removed %d unfinished install folder(s) from %s/tmp", len(removed), home)
