"""Beat 2's production loader: a run's app spans, their baseline and their covering tests."""

from __future__ import annotations

import ast
import dataclasses
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from agent import coverage_map
from agent.conductor import BeatContext
from agent.phases.anomaly.model import AnomalyBaton
from agent.phases.anomaly.production import OpKey, OpSample, ProductionFacts, function_key
from agent.records import CodeLocation
from agent.store import Store

TEST_RUN_KIND = "test"  # runs of the pytest plugin (agent/pipeline.py)
SAMPLE_LIMIT = 20_000  # newest spans per side and service: enough for any rank test
_COLUMNS = (
    "id, operation, duration_ns, status, trace_id, span_id, parent_span_id,"
    " exception_signature, code_file, code_function, run_id"
)
Row = tuple[Any, ...]


def load_production(baton: AnomalyBaton, ctx: BeatContext) -> AnomalyBaton:
    """Compare the run's app spans with the previous service.version, else earlier runs."""
    store = ctx.store
    run_id = baton.request.run_id
    if _is_test_run(store, run_id):
        return baton  # spans under tests are judged per test by the test-run detectors
    root = (baton.request.root or ctx.config.root).resolve()
    versions = store.conn.execute(
        "SELECT service, version, max(start_ns) FROM spans WHERE run_id = ? AND source = 'span'"
        " GROUP BY service, version ORDER BY 3",
        (run_id,),
    ).fetchall()
    if not versions:
        return baton
    newest = {str(service): str(version) for service, version, _ in versions}
    parts = [_service_facts(store, run_id, s, v, root) for s, v in sorted(newest.items())]
    facts = _merge(parts)
    facts = _with_code(store, facts, root)
    return dataclasses.replace(baton, production=facts)


def _service_facts(
    store: Store, run_id: int, service: str, version: str, root: Path
) -> ProductionFacts:
    previous = _previous_version(store, service, version)
    if previous is not None:
        # A version is judged on all its spans so far, whichever runs brought them in.
        cur_rows = _rows(store, "service = ? AND version = ?", (service, version))
        base_rows = _rows(store, "service = ? AND version = ?", (service, previous))
        mode, cur_label, base_label = "version", f"{service} {version}", f"{service} {previous}"
    else:
        cur_rows = _rows(
            store, "run_id = ? AND service = ? AND version = ?", (run_id, service, version)
        )
        base_rows = _rows(
            store, "run_id < ? AND service = ? AND version = ?", (run_id, service, version)
        )
        mode, cur_label, base_label = "window", f"run {run_id}", "earlier runs"
    signatures = _signature_locations(store, cur_rows, root)
    return ProductionFacts(
        mode=mode,
        current_label=cur_label,
        baseline_label=base_label,
        current=_samples(service, version, cur_rows, root),
        baseline=_samples(service, previous or version, base_rows, root),
        baseline_run_id=max((int(r[10]) for r in base_rows), default=0),
        signature_locations=signatures,
    )


def _is_test_run(store: Store, run_id: int) -> bool:
    row = store.conn.execute("SELECT kind FROM runs WHERE id = ?", (run_id,)).fetchone()
    return row is not None and row[0] == TEST_RUN_KIND


def _rows(store: Store, where: str, args: tuple[Any, ...]) -> list[Row]:
    # App spans recorded under tests ran on test inputs: never a production baseline.
    sql = (
        f"SELECT {_COLUMNS} FROM spans WHERE source = 'span' AND {where}"
        f" AND run_id NOT IN (SELECT id FROM runs WHERE kind = '{TEST_RUN_KIND}')"
        f" ORDER BY id DESC LIMIT {SAMPLE_LIMIT}"
    )
    return store.conn.execute(sql, args).fetchall()


def _previous_version(store: Store, service: str, version: str) -> str | None:
    """The version of `service` first stored just before `version` was, if any."""
    seen = store.conn.execute(
        "SELECT version, min(id) FROM spans WHERE service = ? AND source = 'span'"
        " AND run_id NOT IN (SELECT id FROM runs WHERE kind = ?) GROUP BY version ORDER BY 2",
        (service, TEST_RUN_KIND),
    ).fetchall()
    order = [str(v) for v, _ in seen]
    if version not in order:
        return None
    index = order.index(version)
    return order[index - 1] if index > 0 else None


def _samples(service: str, version: str, rows: Sequence[Row], root: Path) -> dict[OpKey, OpSample]:
    by_op: dict[str, list[Row]] = defaultdict(list)
    op_of: dict[tuple[str, str], str] = {}
    for row in rows:
        by_op[row[1]].append(row)
        op_of[(row[4], row[5])] = row[1]
    calls: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for row in rows:
        parent_op = op_of.get((row[4], row[6])) if row[6] else None
        if parent_op is not None:
            calls[(row[4], row[6])][row[1]] += 1
    out: dict[OpKey, OpSample] = {}
    for op, op_rows in by_op.items():
        out[(service, op)] = _sample(op_rows, calls, (service, version, op), root)
    return out


def _sample(
    rows: list[Row],
    calls: dict[tuple[str, str], Counter[str]],
    name: tuple[str, str, str],
    root: Path,
) -> OpSample:
    service, version, op = name
    per_parent = [calls.get((r[4], r[5]), Counter()) for r in rows]
    child_ops = sorted({c for counter in per_parent for c in counter})
    children = {c: tuple(counter.get(c, 0) for counter in per_parent) for c in child_ops}
    places = Counter((r[8], r[9]) for r in rows if r[8] or r[9])
    file, function = places.most_common(1)[0][0] if places else ("", "")
    return OpSample(
        service=service,
        operation=op,
        version=version,
        durations=tuple(int(r[2]) for r in rows),
        errors=sum(1 for r in rows if r[3] == "error"),
        signatures=dict(Counter(r[7] for r in rows if r[7])),
        location=CodeLocation(relative(str(file), root), str(function), 0),
        children=children,
        parents=len(rows),
    )


def relative(path: str, root: Path) -> str:
    """A repository-relative posix path when `path` lies under root; else as given."""
    if not path:
        return ""
    candidate = Path(path)
    if not candidate.is_absolute():
        return candidate.as_posix()
    try:
        return candidate.resolve().relative_to(root).as_posix()
    except (ValueError, OSError):
        return path


def _signature_locations(store: Store, rows: Sequence[Row], root: Path) -> dict[str, CodeLocation]:
    first: dict[str, int] = {}
    for row in rows:
        if row[7] and row[7] not in first:
            first[row[7]] = int(row[0])
    out = {}
    for signature, span_row in first.items():
        found = store.conn.execute(
            "SELECT json_extract(payload, '$.exception_stacktrace') FROM spans WHERE id = ?",
            (span_row,),
        ).fetchone()
        location = frame_location(str(found[0] or "") if found else "", root)
        if location is not None:
            out[signature] = location
    return out


def frame_location(stacktrace: str, root: Path) -> CodeLocation | None:
    """The deepest traceback frame inside the project (not site-packages), else the deepest."""
    frames: list[CodeLocation] = []
    for line in stacktrace.splitlines():
        text = line.strip()
        if not text.startswith('File "'):
            continue
        try:
            path = text.split('"', 2)[1]
            rest = text.split('"', 2)[2]
            number = int(rest.split("line ", 1)[1].split(",", 1)[0])
            func = rest.rsplit(", in ", 1)[1].strip()
        except (IndexError, ValueError):
            continue
        frames.append(CodeLocation(path, func, number))
    if not frames:
        return None
    root_text = str(root)
    own = [f for f in frames if f.file.startswith(root_text) and "site-packages" not in f.file]
    chosen = (own or frames)[-1]
    return dataclasses.replace(chosen, file=relative(chosen.file, root))


def _merge(parts: list[ProductionFacts]) -> ProductionFacts:
    if len(parts) == 1:
        return parts[0]
    current: dict[OpKey, OpSample] = {}
    baseline: dict[OpKey, OpSample] = {}
    signatures: dict[str, CodeLocation] = {}
    for part in parts:
        current.update(part.current)
        baseline.update(part.baseline)
        signatures.update(part.signature_locations)
    return ProductionFacts(
        mode="/".join(sorted({p.mode for p in parts})),
        current_label=", ".join(p.current_label for p in parts),
        baseline_label=", ".join(p.baseline_label for p in parts),
        current=current,
        baseline=baseline,
        baseline_run_id=max(p.baseline_run_id for p in parts),
        signature_locations=signatures,
    )


# Code: line numbers of functions, covering tests, hot functions ------------------------------


def _with_code(store: Store, facts: ProductionFacts, root: Path) -> ProductionFacts:
    current = {
        key: dataclasses.replace(s, location=_with_line(s.location, root))
        for key, s in facts.current.items()
    }
    hot: Counter[str] = Counter()
    places: dict[str, CodeLocation] = {}
    for sample in current.values():
        if sample.location.function:
            key = function_key(sample.location)
            hot[key] += sample.count
            places[key] = sample.location
    locations = [*places.values(), *facts.signature_locations.values()]
    tests, known = _covering_tests(store, locations, root)
    return dataclasses.replace(
        facts,
        current=current,
        coverage_known=bool(known),
        tests_by_function=tests,
        hot_functions={k: (places[k], n) for k, n in hot.items() if places[k].file in known},
    )


def _with_line(location: CodeLocation, root: Path) -> CodeLocation:
    """Spans name a function; find its `def` line in the source for diagnosis and fixes."""
    if location.line or not location.file or not location.function:
        return location
    tree = _parse(root / location.file)
    if tree is None:
        return location
    name = location.function.rsplit(".", 1)[-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            return dataclasses.replace(location, line=node.lineno)
    return location


def _parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8"), str(path))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None


def body_lines(path: Path, line: int) -> set[int]:
    """Lines of the innermost function containing `line` (its body, not the `def`)."""
    tree = _parse(path)
    if tree is None or not line:
        return {line} if line else set()
    best: ast.FunctionDef | ast.AsyncFunctionDef | None = None
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        if first <= line <= (node.end_lineno or node.lineno) and (
            best is None or node.lineno >= best.lineno
        ):
            best = node
    if best is None:
        return {line}
    return set(range(best.body[0].lineno, (best.end_lineno or best.lineno) + 1))


def _covering_tests(
    store: Store, locations: Iterable[CodeLocation], root: Path
) -> tuple[dict[str, tuple[str, ...]], set[str]]:
    """Tests that run each function's body, and the files the coverage map measured."""
    map_id = coverage_map.latest_id(store)
    places = [loc for loc in locations if loc.file and not Path(loc.file).is_absolute()]
    if not map_id or not places:
        return {}, set()
    cmap = coverage_map.load(store, map_id, {loc.file for loc in places})
    if cmap is None:
        return {}, set()
    known = set(cmap.statements)
    tests: dict[str, tuple[str, ...]] = {}
    for loc in places:
        if loc.file not in known:
            continue
        lines = body_lines(root / loc.file, loc.line)
        tests[function_key(loc)] = tuple(cmap.tests_touching(loc.file, lines or None))
    return tests, known
