"""The web service: an HTTP(S) server inside the platform process, and its agent ``platform.web``.

Started only with ``--bind-web-address http(s)://host:port`` (docs/protocol.md §3.5); ``main`` adds
:func:`web_service_factory` to the platform's services then. ``start()`` prepares the signing
secret (:mod:`.tokens`), the TLS certificate (:mod:`.certificates`, unless ``--web-ssl-cert`` and
``--web-ssl-key`` name one), the web users (:mod:`.users`), connects ``platform.web`` to the
router (:mod:`.web_agent`) and serves :class:`~volttron.server.services.web.app.WebApplication`
with gevent's WSGI server in the platform's event loop. Every client connection has an idle
timeout; the TLS handshake and each request's headers have a deadline (``header_timeout``); one
client address holds a bounded number of connections, and so does the service; failed logins are
throttled (:mod:`.throttle`). The limits are in :class:`~.settings.WebSettings`, and
``$VOLTTRON_HOME/web-limits.json`` changes them.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import gevent
from gevent import ssl as gevent_ssl
from gevent.pool import Pool
from gevent.pywsgi import LoggingLogAdapter, WSGIHandler, WSGIServer

from volttron.client.known_identities import PLATFORM_WEB
from volttron.server.context import PlatformContext, ServiceFactory
from volttron.server.services.auth.policy import AuthPolicy
from volttron.server.services.base import InProcessService
from volttron.server.services.web.app import WebApplication
from volttron.server.services.web.certificates import ensure_web_certificate
from volttron.server.services.web.discovery import discovery_document
from volttron.server.services.web.endpoints import EndpointDispatcher
from volttron.server.services.web.errors import WebConfigError, WebError
from volttron.server.services.web.gateway import JsonRpcGateway
from volttron.server.services.web.http_messages import WebRequest
from volttron.server.services.web.login import LoginEndpoint
from volttron.server.services.web.passwords import verify_password
from volttron.server.services.web.routes import RouteTable
from volttron.server.services.web.settings import LIMITS_FILE, WEB_USERS_FILE, WebSettings
from volttron.server.services.web.throttle import LoginThrottle
from volttron.server.services.web.tokens import TokenIssuer, load_or_create_secret
from volttron.server.services.web.users import WebUserStore
from volttron.server.services.web.web_agent import VipCaller, WebAgent
from volttron.utils.home import auth_file_path

_log = logging.getLogger(__name__)


_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 10\r\nConnection: close\r\n"
         b"Content-Length: 0\r\n\r\n")
_TOO_SLOW = (b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
_WARNING_INTERVAL = 60.0


class _HeaderDeadlineHandler(WSGIHandler):
    """gevent's handler, with a deadline for each request line and its headers (408 when missed).

    A client that sends its headers one byte at a time never trips the idle timeout; this deadline
    holds however the bytes come. It ends when the headers are read: the application's time and
    the body are bounded by the idle timeout and the body limit.
    """

    server: _WebServer
    _deadline: gevent.Timeout | None = None

    def read_requestline(self) -> str:
        self._deadline = gevent.Timeout(self.server.header_timeout,
                                        TimeoutError("request headers took too long"))
        self._deadline.start()
        return super().read_requestline()

    def read_request(self, raw_requestline: str) -> Any:
        try:
            return super().read_request(raw_requestline)
        finally:
            self._cancel_deadline()

    def handle_one_request(self) -> Any:
        try:
            return super().handle_one_request()
        finally:
            self._cancel_deadline()

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.close()
            self._deadline = None

    def _handle_client_error(self, ex: BaseException) -> Any:
        if isinstance(ex, OSError):  # the deadline (or the client) ended the headers: no traceback
            _log.debug("web client %s: %s", self.client_address, ex)
            return ("408", _TOO_SLOW)
        # gevent's hook (its handle_one_request and handle call it) is missing from its type stubs
        return cast(Any, super())._handle_client_error(ex)


class _WebServer(WSGIServer):
    """gevent's WSGI server with bounds on what one client can hold.

    Every client socket has an idle timeout; the TLS handshake and each request's headers must
    complete within ``header_timeout``; one address holds at most ``max_per_address`` connections
    (more are answered 503 and closed at once, before any TLS handshake).
    """

    handler_class = _HeaderDeadlineHandler
    wrap_socket: Callable[..., Any]
    """Set by gevent's ``__init__`` when serving TLS: the ``ssl_context``'s method or
    :func:`gevent.ssl.wrap_socket` (an attribute of the instance, which the stubs declare as a method)."""

    def __init__(self, *args: Any, socket_timeout: float, header_timeout: float, max_per_address: int,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.socket_timeout = socket_timeout
        self.header_timeout = header_timeout
        self.max_per_address = max_per_address
        self._per_address: dict[str, int] = {}
        self.refused_connections = 0
        self._warned_at = float("-inf")

    @contextmanager
    def _admitted(self, client_socket: Any, address: Any) -> Iterator[bool]:
        host = str(address[0]) if isinstance(address, tuple) and address else str(address)
        count = self._per_address.get(host, 0)
        if count >= self.max_per_address:
            self._refuse(client_socket, host)
            yield False
            return
        self._per_address[host] = count + 1
        try:
            yield True
        finally:
            left = self._per_address.get(host, 1) - 1
            if left > 0:
                self._per_address[host] = left
            else:
                self._per_address.pop(host, None)

    def _refuse(self, client_socket: Any, host: str) -> None:
        self.refused_connections += 1
        now = time.monotonic()
        if now - self._warned_at >= _WARNING_INTERVAL:
            self._warned_at = now
            _log.warning("web client %s holds %d connections, the most one address may: further ones "
                         "refused (%d so far)", host, self.max_per_address, self.refused_connections)
        try:
            if not self.ssl_enabled:
                client_socket.settimeout(0)
                client_socket.send(_BUSY)
        except OSError:
            pass
        finally:
            client_socket.close()

    def wrap_socket_and_handle(self, client_socket: Any, address: Any) -> Any:
        with self._admitted(client_socket, address) as admitted:
            if not admitted:
                return None
            client_socket.settimeout(self.socket_timeout)
            ssl_args = self.ssl_args
            assert ssl_args is not None  # gevent calls this method only for a server that has them
            try:
                with gevent.Timeout(self.header_timeout, TimeoutError("TLS handshake took too long")):
                    ssl_socket = self.wrap_socket(client_socket, **ssl_args)
            except (ssl.SSLError, OSError) as exc:  # a client that fails or stalls the handshake
                _log.debug("TLS connection from %s closed: %s", address, exc)
                client_socket.close()
                return None
            try:
                return super().handle(ssl_socket, address)
            finally:
                ssl_socket.close()

    def handle(self, sock: Any, address: Any) -> None:
        if self.ssl_enabled:  # admitted in wrap_socket_and_handle
            sock.settimeout(self.socket_timeout)
            super().handle(sock, address)
            return
        with self._admitted(sock, address) as admitted:
            if admitted:
                sock.settimeout(self.socket_timeout)
                super().handle(sock, address)

    def statistics(self) -> dict[str, int]:
        """Connections refused for their address, and addresses connected now."""
        return {"connections_refused": self.refused_connections, "client_addresses": len(self._per_address)}


def make_ssl_context(cert: Any, key: Any) -> ssl.SSLContext:
    """A TLS 1.2+ server context (gevent-cooperative) for ``cert`` and ``key``."""
    context = gevent_ssl.SSLContext(gevent_ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = gevent_ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise WebConfigError(f"cannot use web certificate {cert} with key {key}: {exc}") from None
    return context


class WebService(InProcessService):
    """The platform's web service; see the module docstring."""

    identity = PLATFORM_WEB
    title = "the web service"
    error = WebError
    STOP_TIMEOUT = 3.0

    def __init__(self, context: PlatformContext, settings: WebSettings) -> None:
        super().__init__(context)
        self.settings = settings
        self.app: WebApplication | None = None
        self._server: _WebServer | None = None

    def __repr__(self) -> str:
        return f"<WebService {self.settings.address.url}>"

    def start(self) -> None:
        """Prepare secrets and certificates, connect ``platform.web`` and start listening."""
        ctx = self.context
        self.settings = settings = self.settings.with_limits_file(ctx.home / LIMITS_FILE)
        secret = load_or_create_secret(ctx.home, settings.secret_key)
        tokens = TokenIssuer(secret, ctx.instance_name, settings.token_lifetime)
        ssl_context = self._ssl_context() if settings.tls else None
        policy = AuthPolicy(auth_file_path(ctx.home)) if ctx.auth_enabled else None
        users = WebUserStore(ctx.home / WEB_USERS_FILE, policy)
        routes = RouteTable(ctx.home)
        agent = self.connect(WebAgent, routes=routes, tokens=tokens, users=users, policy=policy,
                             web_address=settings.address.url, platform_serverkey=ctx.serverkey)
        try:
            self._serve(agent, users, tokens, routes, ssl_context)
        except BaseException:
            super().stop()
            raise
        if not ctx.auth_enabled:
            _log.warning("authentication is disabled: web users' capabilities are not checked")
        _log.info("web service listening on %s (%d web users)", settings.address.url, len(users.names()))

    def _serve(self, agent: WebAgent, users: WebUserStore, tokens: TokenIssuer, routes: RouteTable,
               ssl_context: ssl.SSLContext | None) -> None:
        ctx, settings = self.context, self.settings
        caller = VipCaller(agent)
        threadpool = gevent.get_hub().threadpool

        def check_password(password: str, stored: str) -> bool:
            return bool(threadpool.apply(verify_password, (password, stored)))

        self.app = WebApplication(
            routes, self._discovery,
            LoginEndpoint(users, tokens, check_password, LoginThrottle(settings.login_limits)),
            JsonRpcGateway(caller, users, tokens, check_capabilities=ctx.auth_enabled,
                           timeout=settings.rpc_timeout, own_identity=PLATFORM_WEB),
            EndpointDispatcher(caller, settings.callback_timeout), settings.max_body)
        ssl_args: dict[str, Any] = {"ssl_context": ssl_context} if ssl_context is not None else {}
        address = settings.address
        server = _WebServer(
            (address.host, address.port), self.app, spawn=Pool(settings.max_connections),
            log=LoggingLogAdapter(logging.getLogger(f"{__name__}.access"), logging.DEBUG),
            error_log=LoggingLogAdapter(logging.getLogger(f"{__name__}.errors"), logging.WARNING),
            socket_timeout=settings.socket_timeout, header_timeout=settings.header_timeout,
            max_per_address=settings.max_connections_per_address, **ssl_args)
        try:
            server.start()
        except OSError as exc:
            raise WebError(f"the web service cannot listen on {address.url}: {exc.strerror or exc}") from None
        self._server = server

    def _ssl_context(self) -> ssl.SSLContext:
        settings = self.settings
        if settings.ssl_cert is not None and settings.ssl_key is not None:
            cert, key = settings.ssl_cert, settings.ssl_key
        else:
            ctx = self.context
            cert, key = ensure_web_certificate(ctx.home, ctx.instance_name, settings.address)
        return make_ssl_context(cert, key)

    def _discovery(self, request: WebRequest) -> dict[str, Any]:
        ctx = self.context
        return discovery_document(ctx.instance_name, ctx.serverkey, ctx.addresses, request.header("Host"))

    def stop(self) -> None:
        """Stop listening (open requests get :attr:`STOP_TIMEOUT` seconds), then disconnect."""
        if self._server is not None:
            self._server.stop(timeout=self.STOP_TIMEOUT)
            self._server = None
        super().stop()

    def statistics(self) -> dict[str, Any]:
        """Requests, logins, calls, routes and refused connections so far."""
        stats = self.app.statistics() if self.app is not None else {}
        if self._server is not None:
            stats.update(self._server.statistics())
        return stats


def web_service_factory(options: Any) -> ServiceFactory:
    """The service factory for ``main.default_services`` (options must have a bind web address).

    The settings are checked now, so a bad web option stops the platform before it starts.
    """
    settings = WebSettings.from_options(options)

    def make(context: PlatformContext) -> WebService:
        return WebService(context, settings)

    return make
