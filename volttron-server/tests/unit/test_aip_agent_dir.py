"""Agent directories and the agents folder: files, validation, lookup, naming, locks and swaps."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from volttron.server.aip.agent_dir import (
    AgentDirectory,
    check_agent_identity,
    check_priority,
    check_tag,
)
from volttron.server.aip.agents_folder import AgentsFolder
from volttron.server.aip.errors import (
    AgentBusyError,
    AgentNotFoundError,
    AIPError,
    AmbiguousAgentError,
    InvalidIdentityError,
)
from volttron.utils.errors import VolttronError
from volttron.utils.keys import generate_keypair


def make_agent(
    folder: AgentsFolder, identity: str, uuid: str | None = None, name: str = "demo-agent", **kwargs
) -> AgentDirectory:
    return AgentDirectory.populate(
        folder.path / identity, name=name, version="1.0", agent_uuid=uuid, **kwargs
    )


@pytest.fixture
def folder(tmp_path: Path) -> AgentsFolder:
    folder = AgentsFolder(tmp_path / "home")
    folder.ensure()
    return folder


class TestAgentDirectory:
    def test_populate_writes_the_figure_5_layout(self, folder: AgentsFolder) -> None:
        directory = make_agent(folder, "demo-agent-1.0_1", config="a: 1\n", tag="lab", priority=7)
        names = sorted(p.name for p in directory.path.iterdir())
        assert names == ["AUTOSTART", "NAME", "TAG", "UUID", "VERSION", "config", "data", "keystore.json"]
        assert directory.priority == "07"
        assert directory.tag == "lab"
        assert directory.name == "demo-agent"
        assert directory.version == "1.0"
        assert directory.config_path is not None and directory.config_path.read_text() == "a: 1\n"
        assert directory.data_dir.is_dir()
        assert len(directory.uuid) == 36
        assert stat.S_IMODE(os.stat(directory.keystore_path).st_mode) == 0o600
        keys = directory.keys()
        assert len(keys.public) == 43 and len(keys.secret) == 43

    def test_given_keys_and_uuid_are_kept(self, folder: AgentsFolder) -> None:
        keys = generate_keypair()
        directory = make_agent(folder, "x", uuid="1234", keys=keys)
        assert directory.uuid == "1234"
        assert directory.keys() == keys
        assert stat.S_IMODE(os.stat(directory.keystore_path).st_mode) == 0o600

    def test_optional_files_are_absent(self, folder: AgentsFolder) -> None:
        directory = make_agent(folder, "plain")
        assert directory.tag is None and directory.priority is None and directory.config_path is None

    def test_tag_and_priority_can_be_removed(self, folder: AgentsFolder) -> None:
        directory = make_agent(folder, "x", tag="t", priority="50")
        directory.set_tag(None)
        directory.set_priority(None)
        assert not (directory.path / "TAG").exists() and not (directory.path / "AUTOSTART").exists()

    def test_record_and_list_entry(self, folder: AgentsFolder) -> None:
        directory = make_agent(folder, "x", uuid="u-1", tag="t")
        assert directory.record().as_list_entry() == {
            "name": "demo-agent",
            "uuid": "u-1",
            "tag": "t",
            "priority": None,
            "identity": "x",
        }

    def test_bad_config_is_refused(self, folder: AgentsFolder) -> None:
        with pytest.raises(AIPError, match="configuration cannot be read"):
            make_agent(folder, "x", config="{not json")

    def test_missing_uuid_means_not_an_agent(self, folder: AgentsFolder) -> None:
        (folder.path / "stray").mkdir()
        with pytest.raises(AIPError, match="not an installed agent"):
            AgentDirectory(folder.path / "stray").uuid  # noqa: B018


class TestValidation:
    @pytest.mark.parametrize("identity", ["listener", "platform.historian", "a-b_c.1", "x" * 200])
    def test_good_identities(self, identity: str) -> None:
        assert check_agent_identity(identity) == identity

    @pytest.mark.parametrize("identity", ["", "a b", "a/b", "..", ".hidden", "é", "x" * 201, "a\nb"])
    def test_bad_identities(self, identity: str) -> None:
        with pytest.raises(InvalidIdentityError):
            check_agent_identity(identity)

    def test_errors_share_the_root(self) -> None:
        assert issubclass(InvalidIdentityError, VolttronError)

    @pytest.mark.parametrize(
        "value,expected", [(0, "00"), ("5", "05"), (99, "99"), (" 50 ", "50"), (None, None)]
    )
    def test_priorities(self, value, expected) -> None:
        assert check_priority(value) == expected

    @pytest.mark.parametrize("value", [-1, 100, "high", "5.5", ""])
    def test_bad_priorities(self, value) -> None:
        with pytest.raises(AIPError, match="0 to 99"):
            check_priority(value)

    def test_tags(self) -> None:
        assert check_tag("x" * 64) == "x" * 64
        assert check_tag("") is None and check_tag(None) is None
        with pytest.raises(AIPError, match="at most 64"):
            check_tag("x" * 65)
        with pytest.raises(AIPError, match="one line"):
            check_tag("a\nb")


class TestAgentsFolder:
    def test_directories_skip_work_folders_and_strays(self, folder: AgentsFolder) -> None:
        make_agent(folder, "b")
        make_agent(folder, "a")
        (folder.path / ".new-c-00000000").mkdir()
        (folder.path / "not-an-agent").mkdir()
        assert [d.identity for d in folder.directories()] == ["a", "b"]

    def test_resolve_by_uuid_identity_and_prefix(self, folder: AgentsFolder) -> None:
        make_agent(folder, "alpha", uuid="abc-111")
        make_agent(folder, "beta", uuid="abd-222")
        assert folder.resolve("abc-111").identity == "alpha"
        assert folder.resolve("beta").identity == "beta"
        assert folder.resolve("abc").identity == "alpha"
        assert folder.identity_exists("alpha") == "abc-111"
        assert folder.identity_exists("gamma") is None

    def test_ambiguous_prefix_lists_the_matches(self, folder: AgentsFolder) -> None:
        make_agent(folder, "alpha", uuid="abc-111")
        make_agent(folder, "beta", uuid="abd-222")
        with pytest.raises(AmbiguousAgentError) as caught:
            folder.resolve("ab")
        assert "abc-111 (alpha)" in str(caught.value) and "abd-222 (beta)" in str(caught.value)
        assert sorted(caught.value.matches) == [("abc-111", "alpha"), ("abd-222", "beta")]

    @pytest.mark.parametrize("ref", ["", "  ", "zzz", "../etc", ".locks"])
    def test_unknown_refs(self, folder: AgentsFolder, ref: str) -> None:
        make_agent(folder, "alpha", uuid="abc-111")
        with pytest.raises(AgentNotFoundError):
            folder.resolve(ref)

    def test_default_identity_takes_the_first_free_number(self, folder: AgentsFolder) -> None:
        name = "volttron-listener-agent"
        assert folder.default_identity(name, "0.1.0") == f"{name}-0.1.0_1"
        make_agent(folder, f"{name}-0.1.0_1")
        make_agent(folder, f"{name}-0.1.0_3")
        assert folder.default_identity(name, "0.1.0") == f"{name}-0.1.0_2"
        taken = frozenset({f"{name}-0.1.0_2"})
        assert folder.default_identity(name, "0.1.0", taken) == f"{name}-0.1.0_4"

    def test_default_identity_normalizes_odd_versions(self, folder: AgentsFolder) -> None:
        assert folder.default_identity("agent", "1.0+local") == "agent-1.0_local_1"

    def test_instances_of_normalizes_names(self, folder: AgentsFolder) -> None:
        make_agent(folder, "a", name="My_Agent")
        make_agent(folder, "b", name="my-agent")
        make_agent(folder, "c", name="other")
        assert [d.identity for d in folder.instances_of("my.agent")] == ["a", "b"]

    def test_identity_lock_is_exclusive(self, folder: AgentsFolder) -> None:
        lock = folder.lock("alpha")
        try:
            with pytest.raises(AgentBusyError, match="in progress"):
                folder.lock("alpha")
            folder.lock("beta").release()
        finally:
            lock.release()
        folder.lock("alpha").release()

    def test_activate_swaps_and_returns_the_old_directory(self, folder: AgentsFolder) -> None:
        make_agent(folder, "alpha", uuid="old")
        work = folder.work_path("new", "alpha")
        AgentDirectory.populate(work, name="demo", version="2.0", agent_uuid="new")
        old = folder.activate(work, "alpha")
        assert folder.resolve("alpha").uuid == "new"
        assert old is not None and AgentDirectory(old).uuid == "old"
        folder.discard(old)
        assert not old.exists() and not work.exists()

    def test_removing_puts_the_directory_back_on_failure(self, folder: AgentsFolder) -> None:
        directory = make_agent(folder, "alpha")
        with pytest.raises(RuntimeError), folder.removing(directory):
            assert folder.get("alpha") is None
            raise RuntimeError("hook failed")
        assert folder.get("alpha") is not None
        with folder.removing(directory):
            pass
        assert folder.get("alpha") is None and not any(
            p.name.startswith(".removing") for p in folder.path.iterdir()
        )

    def test_recover_undoes_an_interrupted_swap(self, folder: AgentsFolder) -> None:
        old = AgentDirectory.populate(
            folder.work_path("old", "alpha"), name="demo", version="1", agent_uuid="u1"
        )
        AgentDirectory.populate(folder.work_path("new", "beta"), name="demo", version="1")
        make_agent(folder, "gamma", uuid="g-new")
        AgentDirectory.populate(
            folder.work_path("old", "gamma"), name="demo", version="1", agent_uuid="g-old"
        )
        AgentDirectory.populate(folder.work_path("removing", "delta"), name="demo", version="1")
        done = folder.recover()
        assert len(done) == 4
        assert folder.resolve("alpha").uuid == "u1" and not old.path.exists()
        assert folder.resolve("gamma").uuid == "g-new"
        assert folder.get("beta") is None and folder.get("delta") is None
        assert sorted(p.name for p in folder.path.iterdir()) == [".locks", "alpha", "gamma"]

    def test_recover_leaves_locked_identities_alone(self, folder: AgentsFolder) -> None:
        work = folder.work_path("new", "busy")
        work.mkdir()
        lock = folder.lock("busy")
        try:
            assert folder.recover() == []
            assert work.exists()
        finally:
            lock.release()
