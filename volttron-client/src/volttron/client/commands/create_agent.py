"""``vctl create-agent NAME``: a new agent project from the template shipped with volttron-client.

No platform is needed. The template (package data under ``volttron/client/templates/agent``) is
also the copier template of the repository (``templates/copier-agent``): files ending in
``.jinja`` are rendered and lose the suffix, path names are rendered, other files are copied.
Templates use only ``{{ name }}`` substitutions, so this small renderer and copier's Jinja give the
same project; every choice the template needs is one of :meth:`AgentProject.answers`.

::

    project = agent_project("my-agent", description="Watches the chillers.", author="Jo Doe")
    render_project(project, Path("my-agent"))
"""

from __future__ import annotations

import keyword
import re
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import click

from volttron.client.commands.cli import CommandError
from volttron.utils.errors import VolttronError

TEMPLATE_SUFFIX = ".jinja"
DEFAULT_LICENSE = "Apache-2.0"
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9._-]*[A-Za-z0-9]")
_EMAIL = re.compile(r"[^@\s\"\\<>]+@[^@\s\"\\<>]+")
_LICENSE = re.compile(r"[A-Za-z0-9.+() -]+")
_SAFE_TEXT = re.compile(r'[^"\\\n\r{}]*')


class CreateAgentError(VolttronError, ValueError):
    """An agent project that cannot be made: a bad name or answer, or a destination in use."""


@dataclass(frozen=True)
class AgentProject:
    """The answers that make one agent project (copier asks the same questions)."""

    project_name: str
    project_description: str
    author_fullname: str
    author_email: str
    copyright_license: str
    python_package_distribution_name: str
    python_package_import_name: str
    python_package_command_line_name: str
    agent_class_name: str
    volttron_client_requirement: str

    @property
    def project_authors_toml(self) -> str:
        """The ``authors`` entry of ``pyproject.toml`` (no email key when there is no email)."""
        if self.author_email:
            return f'{{ name = "{self.author_fullname}", email = "{self.author_email}" }}'
        return f'{{ name = "{self.author_fullname}" }}'

    def answers(self) -> dict[str, str]:
        """Every template variable and its value."""
        values = dict(vars(self))
        values["project_authors_toml"] = self.project_authors_toml
        return values


def client_requirement(version: str) -> str:
    """The compatible range of ``volttron-client`` for a client ``version``: ``0.1.3`` -> ``>=0.1,<0.2``."""
    match = re.match(r"(\d+)\.(\d+)", version)
    if not match:
        raise CreateAgentError(f"cannot read the volttron-client version {version!r}")
    major, minor = int(match.group(1)), int(match.group(2))
    if major == 0:
        return f">=0.{minor},<0.{minor + 1}"
    return f">={major}.{minor},<{major + 1}"


def agent_project(
    name: str,
    *,
    description: str | None = None,
    author: str | None = None,
    author_email: str | None = None,
    license: str = DEFAULT_LICENSE,  # noqa: A002 - the pyproject key
    import_name: str | None = None,
    class_name: str | None = None,
    client_version: str | None = None,
) -> AgentProject:
    """Check ``name`` and the answers, and derive the package, command and class names."""
    if not _NAME.fullmatch(name):
        raise CreateAgentError(
            f"invalid agent name {name!r}: use letters, digits, '-', '_' or '.', starting with a letter "
            "(e.g. volttron-my-agent)"
        )
    distribution = re.sub(r"[-_.]+", "-", name).lower()
    import_name = import_name or distribution.replace("-", "_")
    if not import_name.isidentifier() or keyword.iskeyword(import_name) or import_name != import_name.lower():
        raise CreateAgentError(
            f"invalid package name {import_name!r}: a lower-case Python identifier is needed"
        )
    if import_name in ("volttron", "listener", "test", "tests"):
        raise CreateAgentError(
            f"package name {import_name!r} would clash with an existing package; choose another"
        )
    words = [w for w in re.split(r"[-_.]+", name) if w]
    class_name = class_name or "".join(w[:1].upper() + w[1:].lower() for w in words) + (
        "" if words[-1].lower().endswith("agent") else "Agent"
    )
    if not class_name.isidentifier() or keyword.iskeyword(class_name):
        raise CreateAgentError(f"invalid class name {class_name!r}")
    description = description if description is not None else f"The {distribution} VOLTTRON agent."
    author = author if author is not None else "VOLTTRON agent developer"
    for what, text in (("description", description), ("author", author)):
        if not text.strip() or not _SAFE_TEXT.fullmatch(text):
            raise CreateAgentError(
                f"invalid {what} {text!r}: one line of text without quotes, backslashes or braces"
            )
    email = author_email or ""
    if email and not _EMAIL.fullmatch(email):
        raise CreateAgentError(f"invalid author email {email!r}")
    if not _LICENSE.fullmatch(license):
        raise CreateAgentError(f"invalid license {license!r}: an SPDX expression such as Apache-2.0 or MIT")
    if client_version is None:
        from volttron.client import __version__

        client_version = __version__
    return AgentProject(
        project_name=name,
        project_description=description,
        author_fullname=author,
        author_email=email,
        copyright_license=license,
        python_package_distribution_name=distribution,
        python_package_import_name=import_name,
        python_package_command_line_name=distribution,
        agent_class_name=class_name,
        volttron_client_requirement=client_requirement(client_version),
    )


def template_root() -> Path:
    """The agent project template inside the installed volttron-client."""
    root = Path(str(resources.files("volttron.client").joinpath("templates").joinpath("agent")))
    if not root.is_dir():
        raise CreateAgentError(f"the agent template is missing from this volttron-client ({root})")
    return root


def render_text(text: str, answers: dict[str, str], source: str = "<template>") -> str:
    """``text`` with every ``{{ name }}`` replaced; any other template syntax is an error."""
    for token in ("{%", "{#"):
        if token in text:
            raise CreateAgentError(
                f"{source}: {token!r} is not supported in agent templates (only {{{{ name }}}})"
            )

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in answers:
            raise CreateAgentError(f"{source}: unknown template variable {name!r}")
        return answers[name]

    rendered = _PLACEHOLDER.sub(replace, text)
    if "{{" in _PLACEHOLDER.sub("", text):
        raise CreateAgentError(f"{source}: malformed '{{{{' placeholder")
    return rendered


def render_project(project: AgentProject, destination: Path, template: Path | None = None) -> list[Path]:
    """Write the project into ``destination`` (absent or empty); returns the files, sorted.

    Nothing is left behind when rendering fails.
    """
    template = template or template_root()
    destination = Path(destination)
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise CreateAgentError(f"{destination} already exists and is not an empty folder")
    answers = project.answers()
    sources = sorted(p for p in template.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    if not sources:
        raise CreateAgentError(f"the agent template {template} holds no files")
    created_root = not destination.exists()
    written: list[Path] = []
    try:
        for source in sources:
            relative = source.relative_to(template)
            parts = [render_text(part, answers, str(relative)) for part in relative.parts]
            target = destination.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.name.endswith(TEMPLATE_SUFFIX):
                target = target.with_name(target.name[: -len(TEMPLATE_SUFFIX)])
                target.write_text(render_text(source.read_text(encoding="utf-8"), answers, str(relative)))
            else:
                shutil.copyfile(source, target)
            written.append(target)
    except BaseException:
        if created_root:
            shutil.rmtree(destination, ignore_errors=True)
        else:
            for child in list(destination.iterdir()):
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise
    return sorted(written)


def _git_config(key: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", "config", "--get", key], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = result.stdout.strip()
    return value or None


@click.command("create-agent")
@click.argument("name")
@click.option(
    "--dir", "directory", type=click.Path(path_type=Path), help="Folder of the new project (default: ./NAME)."
)
@click.option("--description", help="One line saying what the agent does.")
@click.option("--author", help="Author's name (default: git's user.name).")
@click.option("--author-email", help="Author's email (default: git's user.email).")
@click.option("--license", "license_", default=DEFAULT_LICENSE, show_default=True, help="SPDX license.")
@click.option("--package", "import_name", help="Python package name (default: NAME with '_' for '-').")
@click.option("--class-name", help="Agent class name (default: NAME in CamelCase + Agent).")
@click.pass_context
def create_agent(
    ctx: click.Context,
    name: str,
    directory: Path | None,
    description: str | None,
    author: str | None,
    author_email: str | None,
    license_: str,
    import_name: str | None,
    class_name: str | None,
) -> None:
    """Create a new agent project NAME (no platform needed)."""
    try:
        project = agent_project(
            name,
            description=description,
            author=author or _git_config("user.name"),
            author_email=author_email if author_email is not None else _git_config("user.email"),
            license=license_,
            import_name=import_name,
            class_name=class_name,
        )
        destination = directory or Path(project.python_package_distribution_name)
        files = render_project(project, destination)
    except CreateAgentError as exc:
        raise CommandError(str(exc)) from exc
    options: Any = ctx.obj
    if getattr(options, "json", False):
        import json

        click.echo(
            json.dumps({"path": str(destination), "files": [str(f) for f in files], **project.answers()})
        )
        return
    click.echo(f"created {project.python_package_distribution_name} in {destination} ({len(files)} files)")
    click.echo("next:")
    click.echo(f"  cd {destination}")
    click.echo("  pip install -e '.[test]' && pytest")
    identity = project.python_package_distribution_name
    click.echo(f"  vctl install . --agent-config config --vip-identity {identity} --start")
