"""Fixtures of the repository-wide tests."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LITTER = ("vhome", "vhome.log", "listener.json", "cfg.json", "remote-agent-keys.json", "volttron.log",
          "new-config.json", "volttron-demo-agent", "volttron-other-agent")
"""What the README and the guides would leave in the folder they run from if they ran in the checkout."""


def checkout_status() -> set[str]:
    """``git status --porcelain`` of the checkout (untracked files listed one by one)."""
    result = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=True)
    return set(result.stdout.splitlines())


@pytest.fixture
def clean_checkout() -> Iterator[None]:
    """Fails the test when it changed the checkout: new ``git status`` entries or documented litter.

    Other people may edit the checkout meanwhile, so only entries the test could have made count:
    new untracked files or changes of tracked ones under the folders the docs work in, and the
    documents' own file names anywhere at the top.
    """
    if not (ROOT / ".git").exists():
        pytest.skip(reason="needs a git checkout")
    before = checkout_status()
    litter_before = {name for name in LITTER if (ROOT / name).exists()}
    yield
    new = sorted(checkout_status() - before)
    ours = [entry for entry in new if entry[3:].startswith(("volttron-listener-agent/", "docs/", "README"))
            or entry[3:].split("/")[0] in LITTER]
    assert not ours, f"the test changed the checkout: {ours}"
    litter = sorted({name for name in LITTER if (ROOT / name).exists()} - litter_before)
    assert not litter, f"left in the checkout: {litter}"
