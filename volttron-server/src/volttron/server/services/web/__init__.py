"""The web service ``platform.web`` (docs/protocol.md §2.12, §3.5): HTTP(S) for people and agents.

Enable it with ``volttron --bind-web-address https://127.0.0.1:8443`` (or ``bind-web-address`` in
``$VOLTTRON_HOME/config``). Without ``--web-ssl-cert``/``--web-ssl-key`` the platform's CA issues
the certificate; clients trust ``$VOLTTRON_HOME/certificates/certs/<instance>-trusted-cas.crt``.

Routes: ``GET /discovery/``; ``POST /authenticate`` (web user name and password -> bearer
token); ``POST /jsonrpc/<identity>`` (call an agent's RPC method with the token, under the web
user's capabilities); and whatever agents register through ``vip.web``: endpoints answered by
``route.callback`` and folders of static files.

Create a web user::

    python -m volttron.server.services.web.adduser alice --group operators

(or :func:`volttron.server.services.web.users.add_web_user` from Python). Modules: ``settings``,
``passwords``, ``users``, ``tokens``, ``certificates``, ``routes``, ``route_owners`` (who owns
which URL), ``access`` (who may serve which folder), ``static``, ``http_messages``, ``endpoints``,
``login``, ``throttle`` (failed logins), ``gateway``, ``discovery``, ``app`` (the WSGI application),
``web_agent`` (``platform.web`` on the bus), ``service`` (start, stop, connection bounds), ``adduser``.
What agents may serve and the limits: ``docs/web.md``.
"""
