"""The web service: an HTTP(S) server inside the platform process, and its agent ``platform.web``.

Started only with ``--bind-web-address http(s)://host:port`` (reference §3.5); ``main`` adds
:func:`web_service_factory` to the platform's services then. ``start()`` prepares the signing
secret (:mod:`.tokens`), the TLS certificate (:mod:`.certificates`, unless ``--web-ssl-cert`` and
``--web-ssl-key`` name one), the web users (:mod:`.users`), connects ``platform.web`` to the
router (:mod:`.web_agent`) and serves :class:`~volttron.server.services.web.app.WebApplication`
with gevent's WSGI server in the platform's event loop. Every client connection has an idle
timeout (TLS handshake included) and the number of connections served at once is bounded.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

import gevent
from gevent import ssl as gevent_ssl
from gevent.pool import Pool
from gevent.pywsgi import LoggingLogAdapter, WSGIServer

from volttron.client.known_identities import PLATFORM_WEB
from volttron.client.runner import build_agent
from volttron.server.platform import PlatformContext, ServiceFactory
from volttron.server.services.auth.policy import AuthPolicy
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
from volttron.server.services.web.settings import WEB_USERS_FILE, WebSettings
from volttron.server.services.web.tokens import TokenIssuer, load_or_create_secret
from volttron.server.services.web.users import WebUserStore
from volttron.server.services.web.web_agent import VipCaller, WebAgent
from volttron.utils.errors import VolttronError
from volttron.utils.home import auth_file_path

_log = logging.getLogger(__name__)


class _WebServer(WSGIServer):
    """gevent's WSGI server with an idle timeout on every client socket, TLS handshake included."""

    def __init__(self, *args: Any, socket_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.socket_timeout = socket_timeout

    def wrap_socket_and_handle(self, client_socket: Any, address: Any) -> Any:
        client_socket.settimeout(self.socket_timeout)
        try:
            return super().wrap_socket_and_handle(client_socket, address)
        except (ssl.SSLError, OSError) as exc:  # a client that fails or stalls the handshake
            _log.debug("TLS connection from %s closed: %s", address, exc)
            return None

    def handle(self, sock: Any, address: Any) -> None:
        sock.settimeout(self.socket_timeout)
        super().handle(sock, address)


def make_ssl_context(cert: Any, key: Any) -> ssl.SSLContext:
    """A TLS 1.2+ server context (gevent-cooperative) for ``cert`` and ``key``."""
    context = gevent_ssl.SSLContext(gevent_ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = gevent_ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise WebConfigError(f"cannot use web certificate {cert} with key {key}: {exc}") from None
    return context


class WebService:
    """The platform's web service; see the module docstring."""

    AGENT_START_TIMEOUT = 10.0
    STOP_TIMEOUT = 3.0

    def __init__(self, context: PlatformContext, settings: WebSettings) -> None:
        self.context = context
        self.settings = settings
        self.agent: WebAgent | None = None
        self.app: WebApplication | None = None
        self._server: _WebServer | None = None

    def __repr__(self) -> str:
        return f"<WebService {self.settings.address.url}>"

    def start(self) -> None:
        """Prepare secrets and certificates, connect ``platform.web`` and start listening."""
        ctx, settings = self.context, self.settings
        secret = load_or_create_secret(ctx.home, settings.secret_key)
        tokens = TokenIssuer(secret, ctx.instance_name, settings.token_lifetime)
        ssl_context = self._ssl_context() if settings.tls else None
        policy = AuthPolicy(auth_file_path(ctx.home)) if ctx.auth_enabled else None
        users = WebUserStore(ctx.home / WEB_USERS_FILE, policy)
        routes = RouteTable(ctx.home)
        try:
            self.agent = build_agent(
                address=ctx.router_address, identity=PLATFORM_WEB, agent_class=WebAgent,
                timeout=self.AGENT_START_TIMEOUT, context=ctx.zmq_context, enable_auth=ctx.auth_enabled,
                volttron_home=str(ctx.home), instance_name=ctx.instance_name, routes=routes, tokens=tokens,
                users=users, web_address=settings.address.url, platform_serverkey=ctx.serverkey,
                policy=policy)
        except VolttronError as exc:
            raise WebError(f"the web service could not connect as {PLATFORM_WEB}: {exc}") from None
        try:
            self._serve(self.agent, users, tokens, routes, ssl_context)
        except BaseException:
            self._stop_agent()
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
            routes, self._discovery, LoginEndpoint(users, tokens, check_password),
            JsonRpcGateway(caller, users, tokens, check_capabilities=ctx.auth_enabled,
                           timeout=settings.rpc_timeout, own_identity=PLATFORM_WEB),
            EndpointDispatcher(caller, settings.callback_timeout), settings.max_body)
        ssl_args: dict[str, Any] = {"ssl_context": ssl_context} if ssl_context is not None else {}
        address = settings.address
        server = _WebServer(
            (address.host, address.port), self.app, spawn=Pool(settings.max_connections),
            log=LoggingLogAdapter(logging.getLogger(f"{__name__}.access"), logging.DEBUG),
            error_log=LoggingLogAdapter(logging.getLogger(f"{__name__}.errors"), logging.WARNING),
            socket_timeout=settings.socket_timeout, **ssl_args)
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
        self._stop_agent()

    def _stop_agent(self) -> None:
        if self.agent is not None:
            self.agent.core.stop(timeout=self.STOP_TIMEOUT)
            self.agent = None

    def statistics(self) -> dict[str, Any]:
        """Requests, logins, calls and routes so far."""
        return self.app.statistics() if self.app is not None else {}


def web_service_factory(options: Any) -> ServiceFactory:
    """The service factory for ``main.default_services`` (options must have a bind web address).

    The settings are checked now, so a bad web option stops the platform before it starts.
    """
    settings = WebSettings.from_options(options)

    def make(context: PlatformContext) -> WebService:
        return WebService(context, settings)

    return make
