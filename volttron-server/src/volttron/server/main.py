"""The ``volttron`` command: parse options, set up logging, run the platform until told to stop.

Every failure is one line on stderr and a non-zero exit code (2 for a bad command line, 77 when
``--secure-agent-users`` cannot work: not root, or agent users could not run the platform's
Python), with a traceback only under ``--debug``. SIGINT and SIGTERM stop the platform cleanly.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Sequence

import gevent

from volttron.server.aip.agent_users import SecureModeError, check_requirements
from volttron.server.context import ServiceFactory
from volttron.server.options import Handled, OptionsError, PlatformOptions, parse_options
from volttron.server.platform import Platform
from volttron.utils.errors import VolttronError
from volttron.utils.logging import level_for_verbosity, setup_logging

_log = logging.getLogger("volttron.server")

SECURE_MODE_EXIT = 77
"""Exit code when ``--secure-agent-users`` cannot work here (EX_NOPERM: mostly, not root)."""


def default_services(options: PlatformOptions | None = None) -> list[ServiceFactory]:
    """The in-process services a platform starts, in start order.

    ``options`` turns on the optional ones (the web service with ``--bind-web-address``).
    """
    from volttron.server.services.auth.service import auth_service
    from volttron.server.services.config_store.service import config_store_service
    from volttron.server.services.control.service import ControlService
    from volttron.server.services.health.service import health_service

    return [
        auth_service,  # first: the others fetch their capability tables from it
        config_store_service,  # before the agents: they ask for their configurations as they start
        health_service,
        ControlService,
        *_web_services(options),
    ]


def _web_services(options: PlatformOptions | None) -> list[ServiceFactory]:
    """``platform.web``, last: it calls the others (docs/protocol.md §3.2 step 4)."""
    if options is None or not options.bind_web_address:
        return []
    from volttron.server.services.web.service import web_service_factory

    return [web_service_factory(options)]


def _fail(message: str, code: int = 1) -> int:
    one_line = " ".join(message.split())
    sys.stderr.write(f"volttron: error: {one_line}\n")
    sys.stderr.flush()
    return code


def run_platform(options: PlatformOptions, services: Sequence[ServiceFactory]) -> None:
    """Run a platform with ``options`` in this process until SIGINT, SIGTERM or a ``quit`` request."""
    platform = Platform(options, services)
    handlers = [gevent.signal_handler(sig, platform.request_stop) for sig in (signal.SIGINT, signal.SIGTERM)]
    try:
        platform.run()
    finally:
        for handler in handlers:
            handler.cancel()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``volttron`` command; returns the exit code."""
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        options = parse_options(argv)
    except Handled as done:  # --help, --version
        return done.exit_code
    except OptionsError as exc:
        return _fail(str(exc), exc.exit_code)
    if options.secure_agent_users:
        try:
            check_requirements(options.home)
        except SecureModeError as exc:
            return _fail(str(exc), SECURE_MODE_EXIT)
    try:
        setup_logging(level_for_verbosity(options.verbose, options.quiet), options.log_file)
    except VolttronError as exc:
        return _fail(str(exc), 2)
    for note in options.notes:
        _log.warning("%s", note)
    try:
        run_platform(options, default_services(options))
    except VolttronError as exc:
        if debug or options.debug:
            _log.exception("platform failed")
        _log.debug("platform failed: %s", exc)
        return _fail(str(exc))
    except Exception as exc:
        if debug or options.debug:
            raise
        return _fail(f"unexpected {type(exc).__name__}: {exc} (run with --debug for details)")
    return 0
