"""``requires_root``: a test that needs root says so.

Without root it skips, or fails when the run requires root.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from volttron.client.testing.plugin import root_required, skip_or_fail

TEST = '''
import pytest

@pytest.mark.requires_root(reason="makes system users")
def test_needs_root():
    pass
'''


def test_skip_or_fail_follows_the_requirement() -> None:
    with pytest.raises(pytest.fail.Exception, match="requires it"):
        skip_or_fail("not root", True)
    with pytest.raises(pytest.skip.Exception):
        skip_or_fail("not root", False)


def test_the_requirement_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOLTTRON_TEST_REQUIRE_ROOT", "1")
    assert root_required()
    monkeypatch.setenv("VOLTTRON_TEST_REQUIRE_ROOT", "")
    assert not root_required()


def test_a_marked_test_runs_under_root_and_is_reported_otherwise(tmp_path: Path) -> None:
    (tmp_path / "test_marked.py").write_text(TEST)
    env = {k: v for k, v in os.environ.items() if k != "VOLTTRON_TEST_REQUIRE_ROOT"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", str(tmp_path)]
    run = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    if os.geteuid() == 0:
        assert run.returncode == 0 and "1 passed" in run.stdout, run.stdout
    else:
        assert run.returncode == 0 and "not root: makes system users" in run.stdout, run.stdout
