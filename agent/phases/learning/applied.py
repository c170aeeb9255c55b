"""Find, from git history alone, whether and where a patch landed: ours merged, applied by hand,
cherry-picked or squashed — and whether it is still there."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent import git
from agent.errors import GitError

MAX_COMMITS = 500  # how far back from HEAD the searches look


@dataclass(frozen=True)
class Applied:
    patch_id: str
    commit: str  # the first commit on HEAD's line that carries the patch
    applied_ns: int  # that commit's committer time
    how: str  # trailer | patch-id | content
    present: bool  # the patch's content is still in HEAD


def is_ancestor(repo: Path, ancestor: str, commit: str) -> bool:
    """True when `ancestor` is in `commit`'s history (unknown commits count as not)."""
    if not ancestor or not commit:
        return False
    try:
        git.run_git(repo, "merge-base", "--is-ancestor", ancestor, commit)
    except GitError:
        return False
    return True


class History:
    """HEAD's recent history, indexed once per learning play and shared by every patch:
    trailers and patch-ids of the last MAX_COMMITS commits, and one scratch index per tree
    looked at, so each question about a patch costs one `git apply --check`."""

    def __init__(self, repo: Path, head: str = "HEAD", since_ns: int = 0) -> None:
        self.repo = repo
        self.since_ns = since_ns  # the oldest patch asked about was made then
        self._head_ref = head
        self._head: str | None = None
        self._tmp = Path(tempfile.mkdtemp(prefix="selfheal-history-"))
        self._indexes: dict[str, Path] = {}
        self._trailers: dict[str, str] | None = None
        self._patch_ids: dict[str, str] | None = None
        self._line: list[str] | None = None
        self._times: dict[str, int] | None = None
        self._wanted: dict[str, str] = {}  # diff -> its patch-id, computed in one batch
        self._at_head: dict[str, bool] = {}  # diff -> HEAD already holds it

    @property
    def head(self) -> str:
        if self._head is None:  # resolved on first use: an empty store costs no git call
            out = git.run_git(self.repo, "rev-parse", "--verify", "-q", self._head_ref, check=False)
            self._head = out.strip()
        return self._head

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Indexes ----------------------------------------------------------------------------

    def trailers(self) -> dict[str, str]:
        """Patch id -> the oldest commit whose message names it in a trailer."""
        if self._trailers is None:
            # Imported here: the deployment phase is not loaded on runs that check no patch.
            from agent.phases.deployment.message import TRAILER_PATCH

            out = git.run_git(
                self.repo,
                "log",
                f"-{MAX_COMMITS}",
                "--fixed-strings",
                f"--grep={TRAILER_PATCH}: ",
                "--format=%H%x00%B%x01",
                self.head,
                check=False,
            )
            found: dict[str, str] = {}
            for entry in out.split("\x01"):
                sha, _, body = entry.strip().partition("\x00")
                for line in body.splitlines():
                    if line.startswith(f"{TRAILER_PATCH}: "):
                        found[line.split(": ", 1)[1].strip()] = sha  # newest first: oldest wins
            self._trailers = found
        return self._trailers

    def patch_ids(self) -> dict[str, str]:
        """git patch-id -> the oldest non-merge commit since `since_ns` that has it (a patch
        cannot land before it was made, so older history is never read)."""
        if self._patch_ids is None:
            since = [f"--since=@{self.since_ns // 1_000_000_000 - 1}"] if self.since_ns else []
            log = git.run_git(
                self.repo,
                "log",
                f"-{MAX_COMMITS}",
                *since,
                "--no-merges",
                "-p",
                "--format=commit %H",
                self.head,
                check=False,
            )
            found: dict[str, str] = {}
            if log.strip():
                out = git.run_git(self.repo, "patch-id", "--stable", input_text=log)
                for line in out.splitlines():
                    pid, sha = line.split()
                    found[pid] = sha  # git log lists newest first: the oldest overwrites
            self._patch_ids = found
        return self._patch_ids

    def first_parent_line(self) -> list[str]:
        """HEAD's first-parent commits, newest first."""
        if self._line is None:
            out = git.run_git(
                self.repo, "rev-list", "--first-parent", f"-{MAX_COMMITS}", self.head, check=False
            )
            self._line = out.split()
        return self._line

    # Questions --------------------------------------------------------------------------

    def _index(self, commit: str) -> Path | None:
        if commit not in self._indexes:
            index = self._tmp / f"index-{len(self._indexes)}"
            ok = self._git_index(index, ["read-tree", commit]) == 0
            self._indexes[commit] = index if ok else Path()
        found = self._indexes[commit]
        return found if found != Path() else None

    def _git_index(self, index: Path, args: list[str], stdin: str | None = None) -> int:
        env = {**os.environ, "GIT_INDEX_FILE": str(index), "LC_ALL": "C"}
        proc = subprocess.run(
            ["git", *args],
            cwd=self.repo,
            env=env,
            capture_output=True,
            input=stdin.encode() if stdin is not None else None,
            check=False,
        )
        return proc.returncode

    def prepare_presence(self, diffs: list[str]) -> None:
        """Decide for many diffs at once whether HEAD already holds them: one `git cat-file
        --batch` for every file they touch, then a pure check per diff (see `holds`)."""
        todo = [d for d in dict.fromkeys(diffs) if d not in self._at_head]
        if not todo or not self.head:
            return
        parsed = {d: _post_images(d) for d in todo}
        paths = sorted({path for images in parsed.values() if images for path in images})
        blobs = self._blobs(paths)
        for diff, images in parsed.items():
            if images is None:  # not a plain text patch: ask git
                self._at_head[diff] = self.present_in(self.head, diff)
            else:
                self._at_head[diff] = holds(images, blobs)

    def _blobs(self, paths: list[str]) -> dict[str, list[str]]:
        stdin = "".join(f"{self.head}:{p}\n" for p in paths).encode()
        proc = subprocess.run(
            ["git", "cat-file", "--batch"],
            cwd=self.repo,
            input=stdin,
            capture_output=True,
            check=False,
        )
        out, pos, blobs = proc.stdout, 0, {}
        for path in paths:
            header_end = out.index(b"\n", pos)
            header = out[pos:header_end].split()
            pos = header_end + 1
            if len(header) == 3 and header[1] == b"blob":
                size = int(header[2])
                text = out[pos : pos + size].decode("utf-8", errors="replace")
                blobs[path] = text.splitlines()
                pos += size + 1
        return blobs

    def at_head(self, diff: str) -> bool:
        self.prepare_presence([diff])
        return self._at_head.get(diff, False)

    def present_in(self, commit: str, diff: str) -> bool:
        """True when `diff` is already in `commit`'s tree (it reverse-applies), checked in a
        scratch index so neither the checkout nor the real index is touched."""
        index = self._index(commit)
        if index is None:
            return False
        check = ["apply", "--cached", "--reverse", "--check", "-"]
        return self._git_index(index, check, diff) == 0

    def _by_content(self, base: str, diff: str) -> str:
        """The oldest commit after `base` on the first-parent line whose tree holds the patch;
        found by bisection, since a change that landed stays until it is reverted."""
        line = self.first_parent_line()
        if base in line:
            line = line[: line.index(base)]
        lo, hi = 0, len(line)  # line[0] (HEAD) holds it; find the last index that does
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.present_in(line[mid], diff):
                lo = mid
            else:
                hi = mid
        return line[lo] if line else ""

    def recent(self) -> dict[str, int]:
        """Commit -> committer time (ns) for every commit in HEAD's recent history."""
        if self._times is None:
            out = git.run_git(
                self.repo, "log", f"-{MAX_COMMITS}", "--format=%H %ct", self.head, check=False
            )
            self._times = {
                sha: int(ct) * 1_000_000_000 for sha, ct in (ln.split() for ln in out.splitlines())
            }
        return self._times

    def commit_ns(self, commit: str) -> int:
        if commit in self.recent():
            return self.recent()[commit]
        out = git.run_git(self.repo, "show", "-s", "--format=%ct", commit)
        return int(out.strip()) * 1_000_000_000

    def contains(self, commit: str) -> bool:
        """`commit` is in HEAD's history (the recent part answered without a git call)."""
        return commit in self.recent() or is_ancestor(self.repo, commit, self.head)

    def prepare(self, diffs: list[str]) -> None:
        """Compute the patch-ids of many diffs in one `git patch-id` call."""
        todo = [d for d in dict.fromkeys(diffs) if d not in self._wanted]
        if not todo:
            return
        # git patch-id labels each patch with the hex id on its "commit" line; ours are counters.
        stream = "".join(
            f"commit {i:040x}\n{d if d.endswith(chr(10)) else d + chr(10)}"
            for i, d in enumerate(todo)
        )
        out = git.run_git(self.repo, "patch-id", "--stable", input_text=stream)
        labels = {int(label, 16): pid for pid, label in (ln.split() for ln in out.splitlines())}
        for i, diff in enumerate(todo):
            self._wanted[diff] = labels.get(i, "")

    def find(self, patch_id: str, diff: str, base: str) -> Applied | None:
        """Where the patch landed on HEAD's history, or None when it never did."""
        if not self.head or not self.contains(base):
            return None
        self.prepare([diff])
        present = self.at_head(diff)
        wanted = self._wanted.get(diff, "")
        searches: tuple[tuple[str, Callable[[], str]], ...] = (
            ("trailer", lambda: self.trailers().get(patch_id, "")),
            ("patch-id", lambda: self.patch_ids().get(wanted, "") if wanted else ""),
            ("content", lambda: self._by_content(base, diff) if present else ""),
        )
        for how, search in searches:  # cheapest first; later ones run only when needed
            sha = search()
            # Both searches only read HEAD's history, so `sha` is in it; being no older than
            # the base stands in for a git call per patch.
            if sha and sha != base and self.commit_ns(sha) >= self.commit_ns(base):
                return Applied(patch_id, sha, self.commit_ns(sha), how, present)
        return None


def _post_images(diff: str) -> dict[str, list[list[str]]] | None:
    """Per file, the lines each hunk leaves (context and added), or None for a patch that is
    not plain text edits of existing files (binary, new, deleted or renamed files)."""
    from unidiff.errors import UnidiffParseError
    from unidiff.patch import PatchSet

    try:
        patch = PatchSet(diff)
    except UnidiffParseError:
        return None
    images: dict[str, list[list[str]]] = {}
    for pfile in patch:
        if pfile.is_binary_file or pfile.is_added_file or pfile.is_removed_file:
            return None
        if pfile.source_file[2:] != pfile.target_file[2:]:
            return None
        images[pfile.path] = [
            [ln.value.rstrip("\n") for ln in hunk if not ln.is_removed] for hunk in pfile
        ]
    return images or None


def holds(images: dict[str, list[list[str]]], blobs: dict[str, list[str]]) -> bool:
    """Every hunk's resulting lines appear, in order and contiguous, in the file (what
    `git apply --reverse --check` asks, without fuzz)."""
    for path, hunks in images.items():
        lines = blobs.get(path)
        if lines is None:
            return False
        for block in hunks:
            if block and not any(
                lines[i : i + len(block)] == block for i in range(len(lines) - len(block) + 1)
            ):
                return False
    return True


def find_applied(
    repo: Path, patch_id: str, diff: str, base: str, *, head: str = "HEAD", since_ns: int = 0
) -> Applied | None:
    """One-off form of `History.find`."""
    with History(repo, head, since_ns) as history:
        return history.find(patch_id, diff, base)
