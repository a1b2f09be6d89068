"""Create, replace or remove a web user from a shell (the platform may be running; it re-reads).

::

    python -m volttron.server.services.web.adduser alice --group operators \
        --capability edit_config_store --capability 'edit_config_store={"identity": "/listener.*/"}'
    echo "$PASSWORD" | python -m volttron.server.services.web.adduser alice --password-stdin --replace
    python -m volttron.server.services.web.adduser alice --remove

The users file is ``$VOLTTRON_HOME/web-users.json`` (``--users-file`` to name another). Without
``--password-stdin`` the password is asked for twice on the terminal.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from volttron.server.services.web.errors import WebUserError
from volttron.server.services.web.settings import WEB_USERS_FILE
from volttron.server.services.web.users import add_web_user, remove_web_user
from volttron.utils.errors import VolttronError
from volttron.utils.home import get_home


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise WebUserError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m volttron.server.services.web.adduser",
                     description="Create, replace or remove a VOLTTRON web user.")
    parser.add_argument("name", help="the user name")
    parser.add_argument("--group", action="append", default=[], help="a group from auth.json (repeatable)")
    parser.add_argument("--role", action="append", default=[], help="a role from auth.json (repeatable)")
    parser.add_argument("--capability", action="append", default=[], metavar="NAME[=JSON]",
                        help="a capability, optionally with JSON parameters (repeatable)")
    parser.add_argument("--replace", action="store_true", help="replace an existing user")
    parser.add_argument("--remove", action="store_true", help="remove the user")
    parser.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    parser.add_argument("--users-file", help=f"the users file (default $VOLTTRON_HOME/{WEB_USERS_FILE})")
    return parser


def parse_capabilities(items: Sequence[str]) -> dict[str, Any]:
    """``{name: params or None}`` from ``NAME`` and ``NAME={json object}`` items."""
    capabilities: dict[str, Any] = {}
    for item in items:
        name, sep, params = item.partition("=")
        if not name:
            raise WebUserError(f"capability {item!r} has no name")
        value = None
        if sep:
            try:
                value = json.loads(params)
            except ValueError as exc:
                raise WebUserError(f"capability {name!r}: parameters are not JSON: {exc}") from None
            if not isinstance(value, dict):
                raise WebUserError(f"capability {name!r}: parameters must be a JSON object")
        capabilities[name] = value
    return capabilities


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise WebUserError("the passwords differ")
    return first


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code (one line on stderr on failure)."""
    try:
        args = _parser().parse_args(argv)
        path = Path(args.users_file) if args.users_file else get_home() / WEB_USERS_FILE
        if args.remove:
            if not remove_web_user(path, args.name):
                raise WebUserError(f"no web user {args.name!r} in {path}")
            sys.stdout.write(f"removed web user {args.name} from {path}\n")
            return 0
        user = add_web_user(path, args.name, _password(args.password_stdin), groups=args.group,
                            roles=args.role, capabilities=parse_capabilities(args.capability),
                            replace=args.replace)
    except (VolttronError, OSError) as exc:
        sys.stderr.write(f"adduser: error: {exc}\n")
        return 1
    except (KeyboardInterrupt, EOFError):
        sys.stderr.write("adduser: cancelled\n")
        return 1
    sys.stdout.write(f"web user {user.name} saved in {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
