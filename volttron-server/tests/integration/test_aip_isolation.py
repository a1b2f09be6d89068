"""Installs never overwrite the platform, and agents in environments of their own (issue 12 items 2, 4).

The wheels here are written by hand (a few members and a RECORD): one ships ``volttron/client/
__init__.py`` as a published VOLTTRON's ``volttron-core`` does; another requires that
``volttron-core`` from the package index. Beside the platform they are refused, naming the file and
both owners, and the platform's environment is compared byte for byte; with isolation allowed they
go into ``$VOLTTRON_HOME/environments/<name>``, run with that interpreter, and the environment goes
with the last instance. The tests that change the shared venv's test distributions take the same
lock as test_aip_install.py.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from volttron.client.testing.waiting import wait_until
from volttron.server.aip.environment import PipOptions, PythonEnvironment
from volttron.server.aip.errors import DependencyConflictError
from volttron.server.aip.file_clash import InstalledFiles, find_clashes
from volttron.server.aip.installer import InstallerSettings
from volttron.server.aip.platform_agents import AIPConfig, AIPPlatform
from volttron.server.aip.supervisor import SupervisorPolicy

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("shared-venv")]  # see test_aip_install.py

LOCK_PATH = Path(tempfile.gettempdir()) / "volttron-aip-install-tests.lock"  # test_aip_install.py's
POLICY = SupervisorPolicy(restart_limit=1, backoff_initial=0.05, backoff_max=0.1, sigint_grace=2.0,
                          sigterm_grace=2.0)
AGENT_CODE = (
    "import signal\n\n\ndef main():\n"
    "    signal.alarm(120)  # at most 2 minutes: SIGALRM ends it\n"
    "    signal.pause()  # runs until the supervisor signals it\n"
)


def make_wheel(folder: Path, name: str, files: dict[str, str], requires: tuple[str, ...] = ()) -> Path:
    """A wheel of ``name`` 0.1.0 with ``files``, a console script ``name`` and a correct RECORD."""
    stem = name.replace("-", "_")
    info = f"{stem}-0.1.0.dist-info"
    members = dict(files)
    members[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n"
        + "".join(f"Requires-Dist: {r}\n" for r in requires)
    )
    members[f"{info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    module = next(p.split("/")[0] for p in files if p.startswith("vtest"))
    members[f"{info}/entry_points.txt"] = f"[console_scripts]\n{name} = {module}:main\n"
    record = []
    for path, text in members.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    members[f"{info}/RECORD"] = "\n".join(record) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{stem}-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in members.items():
            archive.writestr(path, text)
    return wheel


def environment_digest() -> dict[str, str]:
    """sha256 of every file of the platform's environment (site-packages and bin), caches aside."""
    paths = sysconfig.get_paths()
    folders = {paths["purelib"], paths["platlib"], paths["scripts"]}
    digest: dict[str, str] = {}
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in files:
                path = os.path.join(root, name)
                if os.path.isfile(path):
                    with open(path, "rb") as handle:
                        digest[path] = hashlib.sha256(handle.read()).hexdigest()
    return digest


def pip_freeze() -> str:
    done = subprocess.run([sys.executable, "-m", "pip", "freeze", "--all"], capture_output=True, text=True,
                          timeout=120, check=True)
    return done.stdout


@contextlib.contextmanager
def _shared_venv() -> Iterator[None]:
    with open(LOCK_PATH, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # bounded by pytest's timeout
        yield


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[AIPPlatform]:
    with _shared_venv():
        aip = AIPPlatform(AIPConfig(volttron_home=tmp_path / "home", installer=InstallerSettings(),
                                    supervisor=POLICY))
        yield aip
        aip.shutdown()
        for row in aip.list_agents():
            aip.remove(row["uuid"])


@pytest.fixture
def clash_wheel(tmp_path: Path) -> Path:
    return make_wheel(tmp_path / "wheels", "volttron-testagent-clash", {
        "vtestagent_clash/__init__.py": AGENT_CODE,
        "volttron/client/__init__.py": "raise ImportError('not the platform client')\n",
    })


def test_a_wheel_shipping_our_client_file_is_refused_and_the_environment_is_unchanged(
    platform: AIPPlatform, clash_wheel: Path, tmp_path: Path
) -> None:
    before, freeze = environment_digest(), pip_freeze()
    with pytest.raises(DependencyConflictError) as caught:
        platform.install(str(clash_wheel), vip_identity="clash", isolated=False)
    message = str(caught.value)
    assert "volttron/client/__init__.py (of volttron-testagent-clash) belongs to volttron-client" in message
    assert caught.value.conflicts == ["volttron-client"] and caught.value.step == "check"
    assert environment_digest() == before and pip_freeze() == freeze
    assert platform.list_agents() == []
    assert not (tmp_path / "home" / "environments" / "volttron-testagent-clash").exists()


@pytest.mark.timeout(600)
def test_volttron_core_from_the_index_clashes_and_an_agent_needing_it_is_refused_beside_the_platform(
    platform: AIPPlatform, tmp_path: Path
) -> None:
    environment = PythonEnvironment()
    core = environment.fetch_wheel("volttron-core==2.0.0rc38", tmp_path / "core", PipOptions(), pre=True)
    clashes = {Path(c.path).name if "/bin/" in c.path else c.path.split("site-packages/")[-1]: c
               for c in find_clashes([core], InstalledFiles.of(sys.executable))}
    assert clashes["vctl"].new_owner == "volttron-core" and clashes["vctl"].old_owner == "volttron-client"
    assert clashes["volttron"].old_owner == "volttron-server"
    assert clashes["volttron/client/__init__.py"].old_owner.startswith("volttron-client")

    wheel = make_wheel(tmp_path / "wheels", "volttron-testagent-core",
                       {"vtestagent_core/__init__.py": AGENT_CODE}, requires=("volttron-core==2.0.0rc38",))
    before, freeze = environment_digest(), pip_freeze()
    with pytest.raises(DependencyConflictError, match="volttron-core"):
        platform.install(str(wheel), vip_identity="core.user", isolated=False, pre=True)
    assert environment_digest() == before and pip_freeze() == freeze


def test_isolated_agents_share_an_environment_that_goes_with_the_last_of_them(
    platform: AIPPlatform, clash_wheel: Path, tmp_path: Path
) -> None:
    freeze = pip_freeze()
    started = time.monotonic()
    first = platform.install(str(clash_wheel), vip_identity="clash.a")  # automatic: the clash isolates it
    elapsed = time.monotonic() - started
    env = tmp_path / "home" / "environments" / "volttron-testagent-clash"
    assert first["environment"] == str(env) and (env / "bin" / "python").exists()
    assert any("in its own environment" in n and "volttron/client/__init__.py" in n for n in first["notes"])
    assert elapsed < 30, f"an isolated install of a one-file agent took {elapsed:.1f} s"
    second = platform.install(str(clash_wheel), vip_identity="clash.b", isolated=True)
    assert second["environment"] == str(env) and pip_freeze() == freeze

    pid = platform.start("clash.a")["pid"]
    wait_until(lambda: psutil.Process(pid).cmdline()[:1] == [str(env / "bin" / "python")])
    data = tmp_path / "home" / "agents" / "clash.a" / "data"
    (data / "keep.txt").write_text("kept")
    again = platform.install(str(clash_wheel), vip_identity="clash.a", force=True)  # stays isolated
    assert again["reinstalled"] and again["environment"] == str(env)
    assert (data / "keep.txt").read_text() == "kept"

    platform.stop("clash.a")
    removed = platform.remove("clash.a")
    assert env.exists() and any("still used by clash.b" in n for n in removed["notes"])
    removed = platform.remove("clash.b")
    assert not env.exists() and any("removed the environment" in n for n in removed["notes"])
    assert pip_freeze() == freeze


def test_an_environment_no_agent_uses_is_removed_at_start(platform: AIPPlatform, clash_wheel: Path,
                                                           tmp_path: Path) -> None:
    # a platform killed between making the environment and activating the agent leaves it behind
    home = tmp_path / "home"
    platform.install(str(clash_wheel), vip_identity="kept", isolated=True)
    orphan = home / "environments" / "volttron-testagent-orphan"
    (orphan / "bin").mkdir(parents=True)
    AIPPlatform(AIPConfig(volttron_home=home, supervisor=POLICY))
    assert not orphan.exists() and (home / "environments" / "volttron-testagent-clash").is_dir()


def test_a_reinstall_keeps_the_agents_own_environment_unless_told(
    platform: AIPPlatform, tmp_path: Path
) -> None:
    plain = make_wheel(tmp_path / "wheels", "volttron-testagent-plain",
                       {"vtestagent_plain/__init__.py": AGENT_CODE})
    env = tmp_path / "home" / "environments" / "volttron-testagent-plain"
    assert platform.install(str(plain), vip_identity="plain", isolated=True)["environment"] == str(env)
    assert platform.install(str(plain), vip_identity="plain", force=True)["environment"] == str(env)
    shared = platform.install(str(plain), vip_identity="plain", force=True, isolated=False)
    assert shared["environment"] is None and not env.exists()
    assert any("removed the environment" in n for n in shared["notes"])
