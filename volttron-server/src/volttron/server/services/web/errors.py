"""Errors of the web service, under the one root.

::

    VolttronError
     +-- WebError                 the web service cannot start or serve (the message says why)
          +-- WebConfigError      a web option that cannot be used (also a ConfigError)
          +-- TokenError          a bearer token that is missing, malformed, forged or expired
          +-- WebUserError        a web user that cannot be created or read
          +-- RouteError          a route an agent may not register
               +-- ReservedRouteError     the path belongs to the web service itself
               +-- RouteTakenError        another agent owns that URL (registered it first)
                    +-- DuplicateEndpointError another agent serves that endpoint already

Agents see the route errors as :class:`~volttron.utils.jsonrpc.RemoteError` whose ``exc_type``
names the class.
"""

from __future__ import annotations

from volttron.utils.errors import ConfigError, VolttronError


class WebError(VolttronError):
    """The web service cannot start or serve a request; the message says why."""


class WebConfigError(WebError, ConfigError):
    """A web option (address, certificate, key, secret) that cannot be used."""


class TokenError(WebError):
    """A bearer token that is missing, malformed, badly signed, not yet valid or expired."""


class WebUserError(WebError):
    """A web user that cannot be created (bad name, weak password, exists) or read."""


class RouteError(WebError, ValueError):
    """A route an agent asked for that cannot be registered."""


class ReservedRouteError(RouteError):
    """The path is one the web service answers itself (``/discovery/``, ``/authenticate``, ``/jsonrpc``)."""


class RouteTakenError(RouteError):
    """Another agent owns a URL this route would answer (it registered it first)."""


class DuplicateEndpointError(RouteTakenError):
    """Another agent serves this endpoint already."""
