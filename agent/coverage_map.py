"""Per-test line coverage (coverage.py dynamic contexts): collect, store, load and query."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.store import Store

# file -> lines, with repository-relative POSIX paths
FileLines = dict[str, set[int]]


@dataclass(frozen=True)
class CoverageMap:
    """One stored map: which lines each test ran, and which lines are executable."""

    id: int
    commit: str
    dirty: bool
    created_ns: int
    statements: Mapping[str, frozenset[int]] = field(default_factory=dict)
    per_test: Mapping[str, Mapping[str, frozenset[int]]] = field(default_factory=dict)

    @property
    def total_percent(self) -> float:
        return percent(self.statements, self.covered_lines())

    def covered_lines(self) -> dict[str, set[int]]:
        covered: dict[str, set[int]] = {}
        for files in self.per_test.values():
            for file, lines in files.items():
                covered.setdefault(file, set()).update(lines)
        return covered

    def tests_touching(self, file: str, lines: Iterable[int] | None = None) -> list[str]:
        """Tests that ran any of `lines` of `file` (any line when lines is None), sorted."""
        wanted = None if lines is None else set(lines)
        return sorted(
            node
            for node, files in self.per_test.items()
            if node and file in files and (wanted is None or files[file] & wanted)
        )

    def lines_of(self, nodeid: str) -> Mapping[str, frozenset[int]]:
        return self.per_test.get(nodeid, {})


def percent(statements: Mapping[str, Iterable[int]], covered: Mapping[str, set[int]]) -> float:
    total = hit = 0
    for file, stmts in statements.items():
        s = set(stmts)
        total += len(s)
        hit += len(s & covered.get(file, set()))
    return 100.0 * hit / total if total else 100.0


class Collector:
    """Runs coverage.py for one process and switches its context per test."""

    def __init__(self, root: Path, omit: Iterable[str] = (), cache: Path | None = None) -> None:
        import coverage

        self.root = root
        self.cache = cache  # executable lines per file content, kept between refreshes
        # data_file=None keeps the data in memory: nothing to clean up, nothing to clash with
        # a project's own .coverage file.
        self._cov = coverage.Coverage(
            data_file=None, source=[str(root)], omit=list(omit), branch=False, config_file=False
        )
        self._started = False

    def start(self) -> None:
        self._cov.start()
        self._started = True

    def switch(self, nodeid: str) -> None:
        if self._started:
            self._cov.switch_context(nodeid)

    def stop(self) -> tuple[dict[str, dict[str, list[int]]], dict[str, list[int]]]:
        """(lines per test per file, executable lines per file), JSON-ready and relative."""
        if not self._started:
            return {}, {}
        self._cov.stop()
        self._started = False
        data = self._cov.get_data()
        per_test: dict[str, dict[str, list[int]]] = {}
        statements: dict[str, list[int]] = {}
        known = _read_cache(self.cache)
        fresh: dict[str, list[Any]] = {}
        for abs_file in data.measured_files():
            rel = self._relative(abs_file)
            if rel is None:
                continue
            statements[rel], fresh[rel] = self._statements(abs_file, known.get(rel))
            for line, contexts in (data.contexts_by_lineno(abs_file) or {}).items():
                for ctx in contexts:
                    # The empty context is import time (collection): covered, by no test.
                    per_test.setdefault(ctx, {}).setdefault(rel, []).append(line)
        _write_cache(self.cache, {**known, **fresh})
        return per_test, statements

    def _statements(self, abs_file: str, cached: Any) -> tuple[list[int], list[Any]]:
        """Executable lines; parsing is most of a refresh's cost, so unchanged files reuse it."""
        try:
            digest = hashlib.sha1(Path(abs_file).read_bytes()).hexdigest()
        except OSError:
            digest = ""
        if digest and isinstance(cached, list) and len(cached) == 2 and cached[0] == digest:
            return list(cached[1]), cached
        try:
            _, stmts, _, _ = self._cov.analysis(abs_file)
        except Exception:  # an unparsable file has no statements we could report on
            return [], [digest, []]
        lines = sorted(stmts)
        return lines, [digest, lines]

    def _relative(self, abs_file: str) -> str | None:
        try:
            return Path(abs_file).resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return None


def _read_cache(path: Path | None) -> dict[str, Any]:
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # a damaged cache is only a slower refresh
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path | None, data: dict[str, Any]) -> None:
    if path is None:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # xdist workers write too
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data), encoding="utf-8")
        tmp.replace(path)
    except OSError:
        pass  # the cache is an optimisation; the map itself is complete without it


def merge(
    into: dict[str, dict[str, list[int]]], more: Mapping[str, Mapping[str, list[int]]]
) -> None:
    for node, files in more.items():
        target = into.setdefault(node, {})
        for file, lines in files.items():
            target[file] = sorted(set(target.get(file, [])) | set(lines))


def save(  # noqa: PLR0917 - positional use is established across the phases and tests
    store: Store,
    per_test: Mapping[str, Mapping[str, Iterable[int]]],
    statements: Mapping[str, Iterable[int]],
    commit: str,
    dirty: bool,
    run_id: int = 0,
) -> int:
    """Write one map; returns its id."""
    from coverage.numbits import nums_to_numbits

    covered: dict[str, set[int]] = {}
    for files in per_test.values():
        for file, lines in files.items():
            covered.setdefault(file, set()).update(lines)
    total = sum(len(set(s)) for s in statements.values())
    hit = sum(len(set(s) & covered.get(f, set())) for f, s in statements.items())
    with store.transaction() as conn:
        cur = conn.execute(
            "INSERT INTO coverage_maps (run_id, commit_sha, dirty, created_ns, statements, covered)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, commit, int(dirty), time.time_ns(), total, hit),
        )
        map_id = int(cur.lastrowid or 0)
        conn.executemany(
            "INSERT INTO coverage_files (map_id, file, statements) VALUES (?, ?, ?)",
            [(map_id, f, nums_to_numbits(sorted(set(s)))) for f, s in statements.items()],
        )
        conn.executemany(
            "INSERT INTO coverage_lines (map_id, nodeid, file, lines) VALUES (?, ?, ?, ?)",
            [
                (map_id, node, f, nums_to_numbits(sorted(set(lines))))
                for node, files in per_test.items()
                for f, lines in files.items()
            ],
        )
    return map_id


def latest_id(store: Store, commit: str | None = None, before: int | None = None) -> int:
    """The newest map id (of `commit` if given, older than map `before` if given); 0 if none."""
    sql = "SELECT max(id) FROM coverage_maps WHERE 1 = 1"
    args: list[str | int] = []
    if commit is not None:
        sql += " AND commit_sha = ?"
        args.append(commit)
    if before is not None:
        sql += " AND id < ?"
        args.append(before)
    row = store.conn.execute(sql, args).fetchone()
    return int(row[0] or 0)


def summary(store: Store, map_id: int) -> tuple[str, bool, float] | None:
    """(commit, dirty, total percent) of a map without loading its lines."""
    row = store.conn.execute(
        "SELECT commit_sha, dirty, statements, covered FROM coverage_maps WHERE id = ?", (map_id,)
    ).fetchone()
    if row is None:
        return None
    total = 100.0 * row[3] / row[2] if row[2] else 100.0
    return str(row[0]), bool(row[1]), total


def load(store: Store, map_id: int, files: Iterable[str] | None = None) -> CoverageMap | None:
    """Load a map, optionally only the given files (cheaper for a few changed files)."""
    from coverage.numbits import numbits_to_nums

    head = store.conn.execute(
        "SELECT commit_sha, dirty, created_ns FROM coverage_maps WHERE id = ?", (map_id,)
    ).fetchone()
    if head is None:
        return None
    wanted = None if files is None else set(files)
    statements: dict[str, frozenset[int]] = {}
    for file, blob in store.conn.execute(
        "SELECT file, statements FROM coverage_files WHERE map_id = ?", (map_id,)
    ):
        if wanted is None or file in wanted:
            statements[file] = frozenset(numbits_to_nums(blob))
    per_test: dict[str, dict[str, frozenset[int]]] = {}
    for node, file, blob in store.conn.execute(
        "SELECT nodeid, file, lines FROM coverage_lines WHERE map_id = ?", (map_id,)
    ):
        if wanted is None or file in wanted:
            per_test.setdefault(node, {})[file] = frozenset(numbits_to_nums(blob))
    return CoverageMap(map_id, str(head[0]), bool(head[1]), int(head[2]), statements, per_test)


def uncovered(
    cmap: CoverageMap, changed: Mapping[str, set[int]]
) -> tuple[dict[str, tuple[int, ...]], int]:
    """Changed executable lines no test ran, per file; and the number of changed statements."""
    covered = cmap.covered_lines()
    gaps: dict[str, tuple[int, ...]] = {}
    changed_statements = 0
    for file, lines in changed.items():
        stmts = cmap.statements.get(file)
        if stmts is None:
            continue  # not measured (outside the source, or a test file excluded)
        relevant = set(lines) & stmts
        changed_statements += len(relevant)
        missing = relevant - covered.get(file, set())
        if missing:
            gaps[file] = tuple(sorted(missing))
    return gaps, changed_statements


def map_is_due(store: Store, root: Path, commit: str, dirty: bool, env_key: str = "") -> bool:
    """`auto` mode: refresh only when there is something new to look at.

    Due when Python files changed since the previous recorded test run of this environment
    (committed or in the working tree) and no map of exactly this code exists yet. A first run
    has nothing to compare with, and a green run on unchanged code needs no map: neither pays
    for tracing.
    """
    from agent.errors import GitError
    from agent.git import run_git

    previous = store.conn.execute(
        "SELECT commit_sha, dirty FROM runs WHERE kind = 'test' AND env_key = ?"
        " ORDER BY id DESC LIMIT 1",
        (env_key,),
    ).fetchone()
    if previous is None:
        return False
    newest = latest_id(store, commit=commit or None)
    info = summary(store, newest) if newest else None
    if info is not None and not dirty and not info[1]:
        return False  # this commit's map exists and the tree is clean
    try:
        changed = run_git(root, "diff", "--name-only", previous[0] or "HEAD", "--", "*.py")
    except GitError:
        return True  # the previous commit is gone (rebased): assume everything changed
    return bool(changed.split())


def json_ready(per_test: Mapping[str, Mapping[str, Iterable[int]]]) -> dict[str, Any]:
    return {
        n: {f: sorted(set(lines)) for f, lines in files.items()} for n, files in per_test.items()
    }
