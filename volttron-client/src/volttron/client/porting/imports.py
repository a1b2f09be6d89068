"""Rewrite the monolithic imports of one module: :func:`port_source`.

Only the spans of import statements and of ``utils.<name>`` uses are replaced, located with
:mod:`ast`, so the rest of the file (formatting, comments, strings) stays byte for byte. An import
whose names all move to one module keeps its layout; only the module name changes.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from dataclasses import dataclass, field

from volttron.client.porting.mapping import (
    MONOLITHIC_ROOT,
    NAME_MAP,
    UTILS_MODULE,
    PortingError,
    dotted,
    hint,
    is_module,
    map_module,
    map_name,
    provides,
)

_UTILS_MARKER = "\0volttron-utils-imports\0"


@dataclass(frozen=True)
class Change:
    """One replacement made: ``line`` of the original file, old and new dotted names."""

    line: int
    old: str
    new: str


@dataclass(frozen=True)
class Problem:
    """A name with no equivalent (or a use the tool will not rewrite), for the developer to handle."""

    line: int
    name: str
    reason: str


@dataclass
class PortResult:
    """The new text of one module, what changed in it and what could not be mapped."""

    text: str
    changes: list[Change] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """True when any replacement was made."""
        return bool(self.changes)


class _Source:
    """Offsets in the text for ast positions (which count UTF-8 bytes within a line)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = text.splitlines(keepends=True)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def offset(self, lineno: int, col: int) -> int:
        line = self.lines[lineno - 1] if lineno - 1 < len(self.lines) else ""
        return self.starts[lineno - 1] + len(line.encode("utf-8")[:col].decode("utf-8", "replace"))

    def span(self, node: ast.AST) -> tuple[int, int]:
        return (
            self.offset(node.lineno, node.col_offset),  # type: ignore[attr-defined]
            self.offset(node.end_lineno, node.end_col_offset),  # type: ignore[attr-defined]
        )


def _module_bindings(tree: ast.Module) -> dict[str, int]:
    """Names bound at module level and the line binding them."""
    bound: dict[str, int] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.setdefault(node.name, node.lineno)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        bound.setdefault(name.id, node.lineno)
    return bound


def _import_lines(imports: dict[str, list[tuple[str, str | None]]], indent: str) -> str:
    lines = []
    for module in sorted(imports):
        names = sorted(set(imports[module]), key=lambda item: (item[0], item[1] or ""))
        text = ", ".join(name if alias in (None, name) else f"{name} as {alias}" for name, alias in names)
        lines.append(f"from {module} import {text}")
    return ("\n" + indent).join(lines)


class _Porter:
    """The edits for one module; see :func:`port_source`."""

    def __init__(self, text: str) -> None:
        self.source = _Source(text)
        self.edits: list[tuple[int, int, str]] = []
        self.changes: list[Change] = []
        self.problems: list[Problem] = []
        self.utils_aliases: dict[str, int] = {}
        self.utils_imports: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
        self.statement_context: dict[int, bool] = {}  # statement offset -> indented (needs a body)

    def port(self, tree: ast.Module) -> None:
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module == MONOLITHIC_ROOT or node.module.startswith(MONOLITHIC_ROOT + "."):
                    self._import_from(node)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith(MONOLITHIC_ROOT + ".") or alias.name == MONOLITHIC_ROOT:
                        self._import(node, alias, tree)
        if self.utils_aliases:
            self._utils_uses(tree)

    def _indent(self, node: ast.stmt) -> str:
        line = self.source.lines[node.lineno - 1]
        return line[: len(line) - len(line.lstrip())]

    def _import_from(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        targets: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
        regenerate = False
        uses_utils = False
        for alias in node.names:
            full = f"{module}.{alias.name}"
            if full == UTILS_MODULE:
                self.utils_aliases[alias.asname or alias.name] = node.lineno
                uses_utils = regenerate = True
                continue
            moved = map_module(full) if alias.name != "*" and (module, alias.name) not in NAME_MAP else None
            if moved and is_module(moved):  # a module imported from its package
                parent, _, leaf = moved.rpartition(".")
                asname = alias.asname or (alias.name if leaf != alias.name else None)
                targets[parent].append((leaf, asname))
                regenerate |= leaf != alias.name
                continue
            target = map_name(module, alias.name)
            if target is None:
                self.problems.append(Problem(node.lineno, full, hint(module)))
                continue
            new_module, new_name = target
            if alias.name != "*" and not provides(new_module, new_name):
                self.problems.append(Problem(node.lineno, full, f"{new_module} has no {new_name}"))
                continue
            asname = alias.asname or (alias.name if new_name != alias.name else None)
            targets[new_module].append((new_name, asname))
            regenerate |= new_name != alias.name
        if not targets and not uses_utils:
            return  # nothing mappable: reported above, the statement stays as written
        mapped = sum(len(names) for names in targets.values())
        if len(targets) == 1 and not regenerate and mapped == len(node.names):
            (new_module,) = targets
            self._replace_from_module(node, new_module)
            return
        if mapped + uses_utils != len(node.names):
            self.problems.append(
                Problem(
                    node.lineno, module, "some names stay unmapped; their import was dropped with the others"
                )
            )
        indent = self._indent(node)
        lines = [
            line for line in (_import_lines(targets, indent), _UTILS_MARKER if uses_utils else "") if line
        ]
        start, end = self.source.span(node)
        self.edits.append((start, end, ("\n" + indent).join(lines)))
        self.statement_context[start] = node.col_offset > 0
        self.changes.append(
            Change(node.lineno, module, ", ".join(sorted(targets)) or "(imports of the uses)")
        )

    def _replace_from_module(self, node: ast.ImportFrom, new_module: str) -> None:
        start, end = self.source.span(node)
        segment = self.source.text[start:end]
        match = re.match(r"from(\s+)([\w.\s\\]+?)(\s+import\b)", segment)
        if not match or re.sub(r"[\s\\]", "", match.group(2)) != node.module:
            self.problems.append(Problem(node.lineno, node.module or "", "import statement not understood"))
            return
        self.edits.append((start + match.start(2), start + match.end(2), new_module))
        self.changes.append(Change(node.lineno, node.module or "", new_module))

    def _import(self, node: ast.Import, alias: ast.alias, tree: ast.Module) -> None:
        name = alias.name
        if name == UTILS_MODULE and alias.asname:
            if len(node.names) != 1:
                self.problems.append(
                    Problem(node.lineno, name, "split this import statement, then port again")
                )
                return
            self.utils_aliases[alias.asname] = node.lineno
            start, end = self.source.span(node)
            self.edits.append((start, end, _UTILS_MARKER))
            self.statement_context[start] = node.col_offset > 0
            self.changes.append(Change(node.lineno, name, "(imports of the uses)"))
            return
        new = map_module(name)
        if new is None:
            self.problems.append(Problem(node.lineno, name, hint(name)))
            return
        segment_start, segment_end = self.source.span(node)
        segment = self.source.text[segment_start:segment_end]
        found = re.search(re.escape(name).replace(r"\.", r"\s*\.\s*"), segment)
        if found is None:
            self.problems.append(Problem(node.lineno, name, "import statement not understood"))
            return
        self.edits.append((segment_start + found.start(), segment_start + found.end(), new))
        self.changes.append(Change(node.lineno, name, new))
        if alias.asname is None:  # the uses spell the whole dotted name
            for use in ast.walk(tree):
                if isinstance(use, ast.Attribute) and dotted(use) == name:
                    start, end = self.source.span(use)
                    self.edits.append((start, end, new))

    def _utils_uses(self, tree: ast.Module) -> None:
        bound = _module_bindings(tree)
        attribute_values: set[int] = set()
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)):
                continue
            if node.value.id not in self.utils_aliases:
                continue
            attribute_values.add(id(node.value))
            target = NAME_MAP.get((UTILS_MODULE, node.attr))
            where = f"{node.value.id}.{node.attr}"
            if target is None:
                self.problems.append(Problem(node.lineno, f"{UTILS_MODULE}.{node.attr}", hint(UTILS_MODULE)))
                continue
            new_module, new_name = target
            if new_name in bound:
                reason = (
                    f"{new_name!r} is already defined on line {bound[new_name]}; rename it, then port again"
                )
                self.problems.append(Problem(node.lineno, where, reason))
                continue
            start, end = self.source.span(node)
            self.edits.append((start, end, new_name))
            self.utils_imports[new_module].append((new_name, None))
            self.changes.append(Change(node.lineno, where, f"{new_module}.{new_name}"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Name)
                and node.id in self.utils_aliases
                and id(node) not in attribute_values
            ) and isinstance(node.ctx, ast.Load):
                self.problems.append(
                    Problem(node.lineno, node.id, "the utils module itself is used; port by hand")
                )

    def apply(self) -> str:
        """The text with every edit made (edits never overlap)."""
        edits = sorted(self.edits, key=lambda e: (e[0], e[1]))
        for (s1, e1, _), (s2, _e2, _) in zip(edits, edits[1:]):
            if s2 < e1:
                raise PortingError(f"overlapping rewrites at offsets {s1}-{e1} and {s2}")
        text = self.source.text
        first_marker = min((s for s, _e, r in edits if _UTILS_MARKER in r), default=None)
        for start, end, replacement in reversed(edits):
            if _UTILS_MARKER in replacement:
                indent = self._indent_at(start)
                imports = _import_lines(self.utils_imports, indent) if start == first_marker else ""
                replacement = replacement.replace(_UTILS_MARKER, imports).rstrip()
                if not replacement.strip():
                    replacement = "pass" if self.statement_context.get(start) else ""
            text = text[:start] + replacement + text[end:]
        return text

    def _indent_at(self, offset: int) -> str:
        line_start = self.source.text.rfind("\n", 0, offset) + 1
        return self.source.text[line_start:offset] if not self.source.text[line_start:offset].strip() else ""


def port_source(text: str) -> PortResult:
    """Rewrite the monolithic imports of one module's ``text`` (see the module docstring)."""
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        return PortResult(text, [], [Problem(exc.lineno or 0, "<syntax>", f"cannot parse: {exc.msg}")])
    porter = _Porter(text)
    porter.port(tree)
    if not porter.edits:
        return PortResult(text, [], porter.problems)
    new_text = porter.apply()
    try:
        ast.parse(new_text)
    except SyntaxError as exc:  # never write a file that no longer parses
        problem = Problem(
            exc.lineno or 0, "<rewrite>", f"the rewritten module does not parse ({exc.msg}); unchanged"
        )
        return PortResult(text, [], [*porter.problems, problem])
    return PortResult(new_text, sorted(porter.changes, key=lambda c: c.line), porter.problems)
