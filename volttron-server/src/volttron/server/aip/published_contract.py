"""What an agent of the published VOLTTRON reads at start-up; every agent we launch gets it (issue 12 item 3).

An agent written with the published client (``volttron-core`` 2.x, ``vip_main``) starts from:

* ``AGENT_CREDENTIALS``: JSON ``{"identity", "publickey", "secretkey", "domain": "VIP", "address": ""}``,
  the agent's own keys (which our agents get as ``AGENT_PUBLICKEY``/``AGENT_SECRETKEY`` already);
  its identity must equal ``AGENT_VIP_IDENTITY``;
* the platform's public key from ``$VOLTTRON_HOME/credentials_store/platform.json``, read as a
  credentials record (``identity``, ``publickey``, ``secretkey``, ...). Its client uses only the
  public key of that record (as the CURVE server key); the ``secretkey`` field must be present to
  parse, so we write it EMPTY: the platform's secret key is never put where an agent can read it;
* the address: ``[volttron] address`` of ``$VOLTTRON_HOME/config``, else
  ``ipc://@$VOLTTRON_HOME/run/vip.socket``, which is our platform's default local address.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

PLATFORM_CREDENTIALS = Path("credentials_store") / "platform.json"
"""Where, under the home, the published client reads the platform's (public) credentials."""


def agent_credentials(identity: str, publickey: str, secretkey: str) -> str:
    """The ``AGENT_CREDENTIALS`` value for an agent with these keys."""
    return json.dumps({"identity": identity, "publickey": publickey, "secretkey": secretkey,
                       "domain": "VIP", "address": ""})


def platform_credentials_text(serverkey: str) -> str:
    """The content of ``credentials_store/platform.json``: the public key, and an empty secret key."""
    return json.dumps({"identity": "platform", "publickey": serverkey, "secretkey": "",
                       "domain": "VIP", "address": ""}, indent=2) + "\n"


def ensure_platform_credentials(home: Path, serverkey: str) -> Path:
    """Write ``credentials_store/platform.json`` under ``home`` unless it already says exactly that.

    Readable by everyone, the folder too (it holds nothing secret; in secure mode agents run as
    users of their own, and :func:`~volttron.server.aip.agent_users.secure_home` makes the home's
    other entries private at every start). Written atomically; returns its path.
    """
    path = home / PLATFORM_CREDENTIALS
    text = platform_credentials_text(serverkey)
    path.parent.mkdir(mode=0o755, exist_ok=True)
    os.chmod(path.parent, 0o755)
    try:
        if path.read_text(encoding="utf-8") == text:
            os.chmod(path, 0o644)
            return path
    except (OSError, UnicodeDecodeError):
        pass
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".platform.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
