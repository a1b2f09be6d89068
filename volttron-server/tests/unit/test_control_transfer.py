"""The file transfer of ``vctl install`` (reference §5.4 step 3), both ends, without a platform.

The receiver is the server's :func:`receive_file`; the sender is vctl's :class:`FileSender`,
joined by an in-memory channel that answers each request at once (or misbehaves on purpose).
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest

from volttron.client.commands.transfer import COMPLETE, FileSender
from volttron.client.vip.agent.errors import ResultTimeout
from volttron.server.services.control.transfer import (
    TransferError,
    TransferLimits,
    check_wheel_filename,
    receive_file,
)


class LoopbackChannel:
    """Answers every request the receiver sends with what a :class:`FileSender` says."""

    def __init__(self, content: bytes, tamper=None) -> None:
        self.sender = FileSender(io.BytesIO(content), len(content))
        self.requests: list[list] = []
        self.answers: list[bytes] = []
        self.tamper = tamper or (lambda request, answer: answer)

    def send(self, data: bytes, timeout: float | None = None) -> None:
        request = json.loads(data)
        self.requests.append(request)
        self.answers.append(self.tamper(request, self.sender.answer(request)))

    def recv(self, timeout: float | None = None) -> bytes:
        if not self.answers:
            raise ResultTimeout(timeout, "nothing to receive")
        return self.answers.pop(0)


def limits(**changes) -> TransferLimits:
    base = {"chunk_size": 7, "max_size": 10_000, "step_timeout": 1.0, "total_timeout": 10.0}
    return TransferLimits(**{**base, **changes})


@pytest.mark.parametrize(
    "content",
    [b"", b"x", b"exactly7", b"0123456789" * 31, b"complete", b"abcdefcomplete", b"completecomplete"],
    ids=["empty", "one-byte", "chunk-sized", "many-chunks", "complete", "ends-complete", "two-completes"],
)
def test_file_arrives_intact_whatever_its_content(tmp_path: Path, content: bytes) -> None:
    target = tmp_path / "agent-0.1-py3-none-any.whl"
    size = receive_file(LoopbackChannel(content), target, limits(chunk_size=8))
    assert size == len(content)
    assert target.read_bytes() == content


def test_protocol_is_fetch_checksum_pairs_then_complete(tmp_path: Path) -> None:
    channel = LoopbackChannel(b"0123456789ABCD")
    receive_file(channel, tmp_path / "a.whl", limits())
    assert channel.requests == [["fetch", 7], ["checksum"], ["fetch", 7], ["checksum"], ["fetch", 7]]


def test_checksum_is_the_running_sha512_of_what_was_sent() -> None:
    sender = FileSender(io.BytesIO(b"abcdef"), 6)
    assert sender.answer(["fetch", 4]) == b"abcd"
    assert sender.answer(["checksum"]) == hashlib.sha512(b"abcd").digest()
    assert sender.answer(["fetch", 4]) == b"ef"
    assert sender.answer(["checksum"]) == hashlib.sha512(b"abcdef").digest()
    assert sender.answer(["fetch", 4]) == COMPLETE and sender.finished


def test_checksum_mismatch_fails_and_removes_the_partial_file(tmp_path: Path) -> None:
    def corrupt(request, answer):
        return answer[:-1] + bytes([answer[-1] ^ 1]) if request == ["fetch", 7] else answer

    target = tmp_path / "a.whl"
    with pytest.raises(TransferError, match="checksum mismatch"):
        receive_file(LoopbackChannel(b"0123456789", corrupt), target, limits())
    assert not target.exists()


def test_file_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "a.whl"
    with pytest.raises(TransferError, match="larger than the limit of 20 bytes"):
        receive_file(LoopbackChannel(b"x" * 100), target, limits(max_size=20))
    assert not target.exists()


def test_chunk_larger_than_asked_is_refused(tmp_path: Path) -> None:
    def oversize(request, answer):
        return answer * 3 if request[0] == "fetch" else answer

    with pytest.raises(TransferError, match="at most 7 were asked"):
        receive_file(LoopbackChannel(b"0123456789", oversize), tmp_path / "a.whl", limits())
    assert not (tmp_path / "a.whl").exists()


def test_empty_chunk_is_refused(tmp_path: Path) -> None:
    def empty(request, answer):
        return b"" if request[0] == "fetch" else answer

    with pytest.raises(TransferError, match="empty chunk"):
        receive_file(LoopbackChannel(b"0123", empty), tmp_path / "a.whl", limits())


def test_silent_sender_times_out_and_leaves_nothing(tmp_path: Path) -> None:
    class Silent(LoopbackChannel):
        def send(self, data: bytes, timeout: float | None = None) -> None:
            if len(self.requests) >= 2:
                self.requests.append(json.loads(data))  # the sender stops answering
                return
            super().send(data, timeout)

    target = tmp_path / "a.whl"
    with pytest.raises(TransferError, match="waiting for the next chunk"):
        receive_file(Silent(b"0123456789"), target, limits())
    assert not target.exists()


def test_whole_transfer_has_a_deadline(tmp_path: Path) -> None:
    with pytest.raises(TransferError, match="longer than 0 s"):
        receive_file(LoopbackChannel(b"0123456789"), tmp_path / "a.whl", limits(total_timeout=0))
    assert not (tmp_path / "a.whl").exists()


@pytest.mark.parametrize(
    "name", ["listener-0.1.0-py3-none-any.whl", "my_agent-1.2rc1-py2.py3-none-any.whl", "A+b!c-1-x.whl"]
)
def test_plain_wheel_names_are_accepted(name: str) -> None:
    assert check_wheel_filename(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "../evil-0.1-py3-none-any.whl",
        "dir/agent-0.1-py3-none-any.whl",
        "/abs.whl",
        "agent.tar.gz",
        "",
        ".whl",
        "a..b-1-x.whl",
        None,
    ],
)
def test_names_with_paths_or_other_suffixes_are_refused(name) -> None:
    with pytest.raises(TransferError, match="not a wheel file name"):
        check_wheel_filename(name)


def test_sender_refuses_requests_it_does_not_know() -> None:
    from volttron.client.commands.transfer import UploadError as SenderError

    sender = FileSender(io.BytesIO(b"abc"), 3)
    for request in (["delete"], ["fetch"], ["fetch", 0], ["fetch", "10"], []):
        with pytest.raises(SenderError, match="unexpected request"):
            sender.answer(request)
