# ``python -m volttron.server`` and the ``volttron`` console script. Monkey-patching comes first,
# before anything else is imported, so every module sees the cooperative socket and thread.
from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from volttron.server.main import main as _main  # noqa: E402


def main() -> None:
    """Run the platform and exit with its status."""
    sys.exit(_main())


if __name__ == "__main__":
    main()
