"""The patch safety policy: a unified diff is read and judged before anything is written."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.errors import PatchError

if TYPE_CHECKING:
    from agent.config import Config

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_GIT_HEADER = re.compile(r"^diff --git a/(\S+) b/(\S+)$")
_INDEX = re.compile(r"^index [0-9a-f]{4,64}\.\.[0-9a-f]{4,64}(?: (\d{6}))?$")
_SAFE_MODES = ("100644", "100755")
# Header lines git writes between `diff --git` and the first hunk; anything else is refused.
_HEADER_PREFIXES = (
    "index ",
    "--- ",
    "+++ ",
    "new file mode ",
    "deleted file mode ",
    "old mode ",
    "new mode ",
    "similarity index ",
    "dissimilarity index ",
    "rename from ",
    "rename to ",
    "copy from ",
    "copy to ",
)
# Path components that are never a patch's business: git's own data and ours.
_FORBIDDEN_PARTS = (".git", ".gitmodules", ".selfheal")


@dataclass(frozen=True)
class FileChange:
    """One file of a checked patch, with its changed lines on both sides."""

    path: str  # the path after the patch ('' when the file is deleted)
    source_path: str  # the path before the patch ('' when the file is new)
    added: tuple[int, ...] = ()  # line numbers in the patched file
    removed: tuple[int, ...] = ()  # line numbers in the base file
    anchors: tuple[int, ...] = ()  # base lines around pure insertions (for coverage lookup)

    @property
    def base_lines(self) -> frozenset[int]:
        """Base-side lines the change touches: removed lines plus insertion neighbours."""
        return frozenset(self.removed) | frozenset(self.anchors)


@dataclass(frozen=True)
class CheckedPatch:
    """A diff that passed the policy, with what it changes."""

    diff: str
    files: tuple[FileChange, ...]
    hunks: int

    @property
    def paths(self) -> tuple[str, ...]:
        """Every path the patch writes or deletes, base and target side."""
        names = {p for f in self.files for p in (f.path, f.source_path) if p}
        return tuple(sorted(names))

    @property
    def target_paths(self) -> tuple[str, ...]:
        return tuple(f.path for f in self.files if f.path)


@dataclass(frozen=True)
class PatchPolicy:
    """The limits a patch is held to; `from_config` reads them from `[tool.selfheal]`."""

    max_bytes: int = 200_000
    max_files: int = 20
    max_hunks: int = 50
    allow_paths: tuple[str, ...] = ()  # empty: anywhere inside the repository

    @classmethod
    def from_config(cls, config: Config) -> PatchPolicy:
        return cls(
            config.max_patch_bytes,
            config.max_patch_files,
            config.max_patch_hunks,
            config.allow_paths,
        )


def check_patch(
    diff: str, policy: PatchPolicy | None = None, symlinks: Collection[str] = ()
) -> CheckedPatch:
    """Judge a unified diff; raise PatchError with one reason, or return what it changes.

    `symlinks` are the repository paths that are symbolic links at the base commit: a patch
    may neither edit one nor write through one (a symlinked directory could point anywhere).
    """
    policy = policy or PatchPolicy()
    _check_text(diff, policy)
    paths = _scan_lines(diff.split("\n"))
    for path in sorted(paths):
        check_path(path, policy.allow_paths, symlinks)
    files = _parse(diff)
    if len(files) > policy.max_files:
        raise PatchError(f"patch touches {len(files)} files, over the limit of {policy.max_files}")
    hunks = _hunk_count(diff)
    if hunks > policy.max_hunks:
        raise PatchError(f"patch has {hunks} hunks, over the limit of {policy.max_hunks}")
    for path in sorted({p for f in files for p in (f.path, f.source_path) if p} - paths):
        check_path(path, policy.allow_paths, symlinks)
    return CheckedPatch(diff, files, hunks)


def _check_text(diff: str, policy: PatchPolicy) -> None:
    size = len(diff.encode("utf-8", errors="surrogatepass"))
    if size > policy.max_bytes:
        raise PatchError(f"patch is {size} bytes, over the limit of {policy.max_bytes}")
    if not diff.strip():
        raise PatchError("patch is empty")
    if "\x00" in diff:
        raise PatchError("patch contains NUL bytes (binary content is refused)")
    if "\r" in diff:
        # git apply strips or keeps CRs depending on settings; what a reviewer sees and what
        # lands could differ, so carriage returns are refused outright.
        raise PatchError("patch contains carriage returns (CRLF line endings are refused)")
    if "\ufffd" in diff:
        raise PatchError("patch contains undecodable bytes (U+FFFD): not a text diff")


def _hunk_count(diff: str) -> int:
    return sum(1 for line in diff.split("\n") if line.startswith("@@ "))


def _scan_lines(lines: list[str]) -> set[str]:
    """Walk the diff grammar line by line; return every path named in a header."""
    paths: set[str] = set()
    old = new = 0  # lines still expected in the current hunk
    seen_header = False
    for number, line in enumerate(lines, start=1):
        if old > 0 or new > 0:
            if line == "" and number == len(lines):
                break  # the text ended while the hunk still expected lines
            old, new = _hunk_line(line, number, old, new)
            continue
        if line.startswith("\\ "):
            continue  # "\ No newline at end of file" after the last hunk line
        if line == "" and number == len(lines):
            continue  # the final newline
        if line.startswith("@@"):
            if not seen_header:
                raise PatchError(f"line {number}: hunk before any file header")
            old, new = _hunk_counts(line, number)
            continue
        paths.update(_header_line(line, number, seen_header))
        seen_header = True
    if old > 0 or new > 0:
        raise PatchError("patch ends inside a hunk (truncated or miscounted hunk)")
    if not seen_header:
        raise PatchError("patch has no file headers: not a unified diff")
    return paths


def _header_line(line: str, number: int, seen_header: bool) -> set[str]:
    """Paths named by one line outside a hunk; anything not diff syntax is refused."""
    if line.startswith("diff --git "):
        return _git_header_paths(line, number)
    if line.startswith(("--- ", "+++ ")):
        name = _header_name(line[4:], number)
        return {name} if name else set()
    if seen_header and line.startswith(_HEADER_PREFIXES):
        return _extended_header(line, number)
    what = "before the first file header" if not seen_header else "outside any hunk"
    raise PatchError(f"line {number}: not unified diff syntax ({what}): {line[:60]!r}")


def _hunk_counts(line: str, number: int) -> tuple[int, int]:
    match = _HUNK.match(line)
    if match is None:
        raise PatchError(f"line {number}: malformed hunk header {line[:60]!r}")
    old = 1 if match.group(2) is None else int(match.group(2))
    new = 1 if match.group(4) is None else int(match.group(4))
    if old == 0 and new == 0:
        raise PatchError(f"line {number}: empty hunk")
    return old, new


def _hunk_line(line: str, number: int, old: int, new: int) -> tuple[int, int]:
    tag = line[:1]
    if tag == " ":
        return old - 1, new - 1
    if tag == "-" and old > 0:
        return old - 1, new
    if tag == "+" and new > 0:
        return old, new - 1
    if tag == "\\":
        return old, new
    raise PatchError(f"line {number}: malformed hunk line {line[:60]!r} (counts do not match)")


def _git_header_paths(line: str, number: int) -> set[str]:
    if '"' in line:
        raise PatchError(f"line {number}: quoted path in {line[:80]!r} (quoted names are refused)")
    match = _GIT_HEADER.match(line)
    if match is None:
        raise PatchError(f"line {number}: malformed 'diff --git' header {line[:80]!r}")
    return {match.group(1), match.group(2)}


def _header_name(raw: str, number: int) -> str:
    """The path of a ---/+++ line without its a/ or b/ prefix; '' for /dev/null."""
    name = raw.split("\t", 1)[0]
    if name.startswith('"'):
        raise PatchError(f"line {number}: quoted path {name[:60]!r} (quoted names are refused)")
    if name == "/dev/null":
        return ""
    if name.startswith(("a/", "b/")):
        return name[2:]
    raise PatchError(f"line {number}: path {name[:60]!r} lacks the a/ or b/ prefix of git diffs")


def _extended_header(line: str, number: int) -> set[str]:
    if line.startswith(("old mode ", "new mode ")):
        raise PatchError(f"line {number}: file mode change refused ({line.strip()})")
    if line.startswith(("new file mode ", "deleted file mode ")):
        _check_mode(line.rsplit(" ", 1)[-1], line, number)
        return set()
    if line.startswith("index "):
        match = _INDEX.match(line)
        if match is None:
            raise PatchError(f"line {number}: malformed index line {line[:60]!r}")
        if match.group(1):
            _check_mode(match.group(1), line, number)
        return set()
    for prefix in ("rename from ", "rename to ", "copy from ", "copy to "):
        if line.startswith(prefix):
            name = line[len(prefix) :]
            if name.startswith('"'):
                raise PatchError(f"line {number}: quoted path {name[:60]!r} refused")
            return {name}
    return set()  # similarity / dissimilarity index


def _check_mode(mode: str, line: str, number: int) -> None:
    if mode == "120000":
        raise PatchError(f"line {number}: symbolic links are refused ({line.strip()})")
    if mode == "160000":
        raise PatchError(f"line {number}: submodule changes are refused ({line.strip()})")
    if mode == "100755" and line.startswith("new file mode"):
        raise PatchError(f"line {number}: new executable files are refused ({line.strip()})")
    if mode not in _SAFE_MODES:
        raise PatchError(f"line {number}: file mode {mode} refused ({line.strip()})")


def check_path(
    path: str, allow_paths: Collection[str] = (), symlinks: Collection[str] = ()
) -> None:
    """Refuse a repository path that could write outside the repository or the allow-list."""
    if not path:
        raise PatchError("empty path in patch")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in path):
        raise PatchError(f"path {path!r} contains control characters")
    if path.startswith(('"', "'")):
        raise PatchError(f"path {path!r} is quoted (quoted names are refused)")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path) or path.startswith("~"):
        raise PatchError(f"path {path!r} is absolute")
    if "\\" in path:
        raise PatchError(f"path {path!r} contains a backslash")
    parts = path.split("/")
    if ".." in parts:
        raise PatchError(f"path {path!r} has a '..' component")
    if any(part in ("", ".") for part in parts):
        raise PatchError(f"path {path!r} has an empty or '.' component")
    for part in parts:
        if part.lower() in _FORBIDDEN_PARTS:
            raise PatchError(f"path {path!r} is inside {part}/ (never patched)")
    for depth in range(1, len(parts) + 1):
        prefix = "/".join(parts[:depth])
        if prefix in symlinks:
            what = "is a symbolic link" if depth == len(parts) else f"goes through symlink {prefix}"
            raise PatchError(f"path {path!r} {what}")
    if allow_paths and not _allowed(path, allow_paths):
        raise PatchError(f"path {path!r} is outside the allowed paths ({', '.join(allow_paths)})")


def _allowed(path: str, allow_paths: Collection[str]) -> bool:
    for pattern in allow_paths:
        stem = pattern.rstrip("/")
        if path == stem or path.startswith(stem + "/") or fnmatch.fnmatchcase(path, pattern):
            return True
    return False


def _parse(diff: str) -> tuple[FileChange, ...]:
    from unidiff.errors import UnidiffParseError
    from unidiff.patch import PatchSet

    try:
        patch_set = PatchSet(diff)
    except UnidiffParseError as exc:
        raise PatchError(f"malformed diff: {exc}") from None
    if len(patch_set) == 0:
        raise PatchError("diff parses to no file changes")
    files: list[FileChange] = []
    seen: set[str] = set()
    for pfile in patch_set:
        change = _file_change(pfile)
        for name in {change.path, change.source_path} - {""}:
            if name in seen:
                raise PatchError(f"path {name!r} appears twice in the patch")
            seen.add(name)
        files.append(change)
    return tuple(files)


def _file_change(pfile: object) -> FileChange:
    from unidiff.patch import PatchedFile

    assert isinstance(pfile, PatchedFile)
    if pfile.is_binary_file:
        raise PatchError(f"binary change to {pfile.path!r} refused")
    target = "" if pfile.is_removed_file else _strip(pfile.target_file)
    source = "" if pfile.is_added_file else _strip(pfile.source_file)
    if not len(pfile) and not pfile.is_rename:
        raise PatchError(f"file {pfile.path!r} has a header but no hunks")
    added: list[int] = []
    removed: list[int] = []
    anchors: set[int] = set()
    for hunk in pfile:
        previous = hunk.source_start - 1
        inserted = replaced = False  # what the current run of changed lines did
        for line in hunk:
            if line.is_added:
                added.append(int(line.target_line_no or 0))
                inserted = True
            elif line.is_removed:
                removed.append(int(line.source_line_no or 0))
                replaced = True
            elif line.is_context:
                number = int(line.source_line_no or 0)
                if inserted and not replaced:
                    anchors.update({previous, number})
                previous = number
                inserted = replaced = False
        if inserted and not replaced:
            anchors.update({previous, previous + 1})
    anchors.discard(0)
    return FileChange(target, source, tuple(added), tuple(removed), tuple(sorted(anchors)))


def _strip(name: str) -> str:
    return name[2:] if name.startswith(("a/", "b/")) else name


def changed_python_files(patch: CheckedPatch) -> tuple[str, ...]:
    return tuple(p for p in patch.target_paths if p.endswith(".py"))
