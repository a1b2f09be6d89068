"""``scripts/profile``'s reading of py-spy output, and its refusal without py-spy.

py-spy is not a dependency, so the sampling itself is not run here; what the script makes of
py-spy's collapsed stacks (shares, the hub's own loop, named areas) is.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from volttron.client.testing.modules import load_beside

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "benchlib" / "profiling.py"
profile_script = load_beside(SCRIPT, "profiling", key="volttron_bench_profiling")

RAW = """\
_run (volttron/server/router/zmq_router.py:400);route (volttron/server/router/routing.py:150);\
_publish (volttron/server/services/pubsub/service.py:240) 30
_run (volttron/server/router/zmq_router.py:400);send (volttron/server/router/zmq_router.py:200) 50
run (gevent/hub.py:600) 20
garbage line without a count
"""


def test_collapsed_stacks_become_shares_and_areas(tmp_path: Path, capsys) -> None:
    path = tmp_path / "router.txt"
    path.write_text(RAW)
    profile = profile_script.Profile.read("router", path)
    assert profile.total == 100
    assert profile.self_counts()["zmq_router.py:send"] == 50
    assert profile.inclusive(("service.py:_publish",)) == 30
    assert profile.inclusive(("zmq_router.py:_run",)) == 80
    profile_script.report([profile], per=1000, unit="message", rate=1000, top=5)
    out = capsys.readouterr().out
    # 100 samples at 1,000 Hz are 0.1 s of Python: 100 us for each of 1,000 messages
    assert "100 samples; 100 outside the hub's loop = 100.0 us per message" in out
    assert "router: receive loop" in out and "router: pub/sub publish" in out


def test_the_hub_loop_is_left_out_of_the_busy_figure(tmp_path: Path) -> None:
    path = tmp_path / "agent.txt"
    path.write_text("Hub.run (gevent/hub.py:600) 70\nCooperativeSocket.recv_multipart "
                    "(volttron/client/messagebus/zmq.py:150) 30\n")  # py-spy names methods with their class
    profile = profile_script.Profile.read("agent", path)
    assert profile.idle == 70 and profile.total == 100
    assert profile.inclusive(("zmq.py:recv_multipart",)) == 30


def test_without_py_spy_it_says_so_in_one_line(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, str(SCRIPT),
                          "--py-spy", str(tmp_path / "missing")], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        "profile: py-spy not found: pip install py-spy, or pass --py-spy PATH"]
