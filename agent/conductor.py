"""Sequences: load and validate the JSON files, then play their beats in order on one baton."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.config import Config
from agent.errors import BeatError, SequenceError
from agent.handlers import Handler, Kind, Registry, default_registry
from agent.records import EventSource, TelemetryEvent

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import Tracer

    from agent.store import Store

log = logging.getLogger("selfheal.conductor")

INDEX = "index.json"
SCHEMA = "sequence.schema.json"


@dataclass(frozen=True)
class ErrorPolicy:
    policy: str = "abort"  # abort | continue | retry
    attempts: int = 1


@dataclass(frozen=True)
class Beat:
    number: int
    event: str
    title: str
    handler: Handler
    timing_s: float  # soft limit: handlers read ctx.deadline; overruns are recorded
    on_error: ErrorPolicy


@dataclass(frozen=True)
class Sequence:
    id: str
    name: str
    phase: str
    file: Path
    beats: tuple[Beat, ...]


def bundled_dir() -> Path:
    from sequences import SEQUENCE_DIR

    return SEQUENCE_DIR


def load_sequences(
    directory: Path | None = None,
    registry: Registry | None = None,
    overlay: Path | None = None,
    *,
    checked_cache: Path | None = None,
) -> dict[str, Sequence]:
    """Load and check every sequence; all problems are reported together, one line each.

    `checked_cache` names a file of content hashes that passed the schema before, so a
    repeated run with unchanged files skips jsonschema (its import alone costs ~50 ms).
    """
    return SequenceLoader(directory, registry, overlay, checked_cache=checked_cache).load_all()


class SequenceLoader:
    """The sequence files of a directory (and overlay); each is checked on its first request.

    Listing reads index.json and every listed file (a fraction of a millisecond), so ids are
    known and a duplicate id is caught. Checking a sequence (schema, beat numbers, events) and
    resolving its handlers, which imports its phase, waits until that sequence is asked for;
    `load_all` checks everything at once, as `selfheal sequences check` does.
    """

    def __init__(
        self,
        directory: Path | None = None,
        registry: Registry | None = None,
        overlay: Path | None = None,
        *,
        checked_cache: Path | None = None,
    ) -> None:
        self.registry = default_registry() if registry is None else registry
        self._directory = directory
        self._overlay = overlay
        self._checked_cache = checked_cache
        self._listing: _Listing | None = None
        self._resolved: dict[Path, Sequence] = {}

    def ids(self) -> list[str]:
        """The ids of the listed files that could be read, in index order (nothing resolved)."""
        return list(dict.fromkeys(s.seq_id for s in self._list().sources if s.seq_id))

    def get(self, seq_id: str) -> Sequence:
        """One sequence, checked and resolved on first request; every problem of it at once."""
        listing = self._list()
        if listing.problems:
            raise SequenceError("\n".join(listing.problems))
        claims = [s for s in listing.sources if s.seq_id == seq_id]
        if not claims:
            # A file that could not be read, or has no id, may have been meant to be this one.
            problems = [f"no sequence {seq_id!r} (known: {', '.join(self.ids())})"]
            self._load([s for s in listing.sources if s.seq_id is None], problems)
            raise SequenceError("\n".join(dict.fromkeys(problems)))
        problems = []
        found = self._load(claims, problems)
        if problems:
            raise SequenceError("\n".join(dict.fromkeys(problems)))
        return found[seq_id]

    def load_all(self) -> dict[str, Sequence]:
        listing = self._list()
        problems = list(listing.problems)
        found = self._load(listing.sources, problems)
        if problems:
            raise SequenceError("\n".join(dict.fromkeys(problems)))
        return found

    def _list(self) -> _Listing:
        if self._listing is None:
            self._listing = _Listing.read(self._directory, self._overlay, self._checked_cache)
        return self._listing

    def _load(self, sources: list[_Source], problems: list[str]) -> dict[str, Sequence]:
        listing = self._list()
        result: dict[str, Sequence] = {}
        for source in sources:
            seq = self._resolved.get(source.path)
            if seq is None:
                seq = _load_one(source, listing.schema(), self.registry, problems, listing.checked)
            if seq is None:
                continue
            self._resolved[source.path] = seq
            if seq.id in result:
                problems.append(
                    f"{source.path}: sequence id {seq.id!r} also in {result[seq.id].file}"
                )
            result[seq.id] = seq
        if not problems:
            listing.checked.save(s.content for s in listing.sources)
        return result


@dataclass(frozen=True)
class _Source:
    """One listed sequence file as read: its bytes and JSON, or why it could not be read."""

    path: Path
    content: bytes
    data: Any
    problems: tuple[str, ...] = ()

    @property
    def seq_id(self) -> str | None:
        raw = self.data.get("id") if isinstance(self.data, dict) else None
        return raw if isinstance(raw, str) else None

    @classmethod
    def read(cls, path: Path) -> _Source:
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            return cls(path, b"", None, (f"{path}: file not found",))
        except OSError as exc:
            return cls(path, b"", None, (f"{path}: cannot read: {exc.strerror or exc}",))
        try:
            return cls(path, content, json.loads(content.decode("utf-8")))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return cls(path, content, None, (f"{path}: invalid JSON: {exc}",))


@dataclass
class _Listing:
    """The files a sequence directory and overlay name, read but not yet checked."""

    sources: list[_Source]
    problems: list[str]  # about the index or the overlay itself
    checked: _SchemaCache
    _schema: Any = None

    @classmethod
    def read(cls, directory: Path | None, overlay: Path | None, cache: Path | None) -> _Listing:
        problems: list[str] = []
        files = _index_files(directory or bundled_dir(), problems)
        if overlay is not None:
            files = _overlay(files, overlay, problems)
        checked = _SchemaCache(cache, bundled_dir() / SCHEMA)
        return cls([_Source.read(path) for path in files], problems, checked)

    def schema(self) -> Any:
        if self._schema is None:
            self._schema = _read_json(bundled_dir() / SCHEMA, [])
        return self._schema


class _SchemaCache:
    """Hashes of (schema, sequence file) pairs that validated; only passes are remembered."""

    VERSION = b"selfheal-schema-cache-1\0"

    def __init__(self, path: Path | None, schema_path: Path) -> None:
        self.path = path
        self._schema_path = schema_path
        self._schema: bytes | None = None
        self._known: set[str] = set()
        self._passed: set[str] = set()
        if path is not None:
            with contextlib.suppress(OSError, UnicodeDecodeError):
                self._known = set(path.read_text(encoding="utf-8").split())

    def digest(self, content: bytes) -> str:
        if self._schema is None:
            self._schema = _read_bytes(self._schema_path)
        return hashlib.sha256(self.VERSION + self._schema + b"\0" + content).hexdigest()

    def passed_before(self, digest: str) -> bool:
        return self.path is not None and digest in self._known

    def passed(self, digest: str) -> None:
        self._passed.add(digest)

    def save(self, listed: Iterable[bytes]) -> None:
        """Keep the passes of the files listed now, whether checked in this process or before."""
        # Sequences are checked one by one as they are played, so a pass from an earlier
        # process stays while its file is unchanged; a file's old contents drop out.
        # Rewritten only when that set changes, and only beside an existing store directory
        # (never created for it); a read-only location just means no cache.
        if self.path is None or not self.path.parent.is_dir():
            return
        keep = {d for d in map(self.digest, listed) if d in self._known or d in self._passed}
        if keep == self._known:
            return
        with contextlib.suppress(OSError):
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text("\n".join(sorted(keep)) + "\n", encoding="utf-8")
            os.replace(tmp, self.path)
            self._known = keep


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _index_files(directory: Path, problems: list[str]) -> list[Path]:
    index_path = directory / INDEX
    if not index_path.is_file():
        problems.append(f"{index_path}: missing sequence index")
        return []
    index = _read_json(index_path, problems)
    if not isinstance(index, dict) or not isinstance(index.get("sequences"), list):
        problems.append(f"{index_path}: expected an object with a 'sequences' list")
        return []
    files = []
    for name in index["sequences"]:
        if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
            problems.append(f"{index_path}: bad sequence file name {name!r}")
            continue
        files.append(directory / name)
    return files


def _overlay(files: list[Path], overlay: Path, problems: list[str]) -> list[Path]:
    """A user directory replaces our files of the same name and may add its own."""
    if not overlay.is_dir():
        problems.append(f"{overlay}: sequences directory does not exist")
        return files
    by_name = {p.name: p for p in files}
    for path in sorted(overlay.glob("*.json")):
        if path.name not in (INDEX, SCHEMA):
            by_name[path.name] = path
    return list(by_name.values())


def _read_json(path: Path, problems: list[str]) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problems.append(f"{path}: file not found")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: invalid JSON: {exc}")
    return None


def _load_one(
    source: _Source,
    schema: Any,
    registry: Registry,
    problems: list[str],
    checked: _SchemaCache,
) -> Sequence | None:
    if source.problems:
        problems.extend(source.problems)
        return None
    path, data = source.path, source.data
    before = len(problems)
    digest = checked.digest(source.content)
    if not checked.passed_before(digest):
        _check_schema(path, data, schema, problems)
    if len(problems) > before:
        return None
    checked.passed(digest)
    beats: list[Beat] = []
    seen_numbers: set[int] = set()
    seen_events: set[str] = set()
    last = 0
    for movement in data["movements"]:
        for raw in movement["beats"]:
            beat = _load_beat(path, raw, data["phase"], registry, problems)
            number = raw["beat"]
            where = f"{path}: beat {number} ({raw['handler']})"
            if number in seen_numbers:
                problems.append(f"{where}: duplicate beat number")
            elif number <= last:
                problems.append(f"{where}: beat numbers must increase (after {last})")
            if raw["event"] in seen_events:
                problems.append(f"{where}: duplicate event {raw['event']!r}")
            seen_numbers.add(number)
            seen_events.add(raw["event"])
            last = max(last, number)
            if beat is not None:
                beats.append(beat)
    if len(problems) > before:
        return None
    return Sequence(data["id"], data["name"], data["phase"], path, tuple(beats))


def _check_schema(path: Path, data: Any, schema: Any, problems: list[str]) -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    for error in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
        where = _json_where(list(error.absolute_path), data)
        problems.append(f"{path}: {where}{error.message}")


def _json_where(pointer: list[Any], data: Any) -> str:
    """Name the beat (by number) when the error is inside one, else the JSON path."""
    if len(pointer) >= 4 and pointer[0] == "movements" and pointer[2] == "beats":
        try:
            raw = data["movements"][pointer[1]]["beats"][pointer[3]]
            return f"beat {raw.get('beat', pointer[3] + 1)}: "
        except (KeyError, IndexError, TypeError, AttributeError):
            pass
    return f"at /{'/'.join(str(p) for p in pointer)}: " if pointer else ""


def _load_beat(
    path: Path, raw: dict[str, Any], phase: str, registry: Registry, problems: list[str]
) -> Beat | None:
    where = f"{path}: beat {raw['beat']} ({raw['handler']})"
    try:
        handler = registry.get(raw["handler"], phase)
    except SequenceError as exc:  # e.g. an entry point that fails to load or reuses a name
        problems.extend(str(exc).splitlines())
        return None
    if handler is None:
        problems.append(f"{where}: unknown handler {raw['handler']!r}")
        return None
    if handler.kind.value != raw["kind"]:
        problems.append(
            f"{where}: kind {raw['kind']!r} but the handler is declared {handler.kind.value!r}"
        )
        return None
    err = raw.get("onError", {"policy": "abort"})
    policy = ErrorPolicy(err["policy"], int(err.get("attempts", 1)))
    timing = float(raw["timing"].get("maxSeconds", math.inf))
    return Beat(raw["beat"], raw["event"], raw["title"], handler, timing, policy)


@dataclass
class BeatContext:
    """What a handler may use besides its baton. Pure beats get no store."""

    config: Config
    conductor: Conductor
    sequence: str
    beat: int
    handler: str
    kind: Kind
    deadline: float  # time.monotonic() value by which the beat should be done
    progress: Callable[[str], None]
    _store: Store | None = None

    @property
    def store(self) -> Store:
        if self.kind is Kind.PURE:
            raise RuntimeError(f"{self.handler} is a pure beat and may not touch the store")
        return self.conductor.store()

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def play(self, sequence_id: str, baton: Any) -> Any:
        """A nested play; its beats share this beat's deadline."""
        return self.conductor.play(sequence_id, baton, deadline=self.deadline)


@dataclass
class _Recorder:
    """Collects the SDK spans of beats; they reach the store when the outer play ends."""

    events: list[TelemetryEvent] = field(default_factory=list)

    def on_end(self, span: ReadableSpan) -> None:
        from agent.otel import span_to_event

        self.events.append(span_to_event(span, EventSource.BEAT))


class Conductor:
    """Plays sequences; one per process or per pytest session."""

    def __init__(
        self,
        config: Config,
        *,
        registry: Registry | None = None,
        store_factory: Callable[[], Store] | None = None,
        progress: Callable[[str], None] | None = None,
        sequences_dir: Path | None = None,
    ) -> None:
        self.config = config
        self.registry = default_registry() if registry is None else registry
        # Nothing is read here: each sequence is checked, and its phase imported, on first play.
        self._loader = SequenceLoader(
            sequences_dir,
            self.registry,
            config.sequences,
            checked_cache=config.store.with_name(config.store.name + ".sequences-checked"),
        )
        self._store_factory = store_factory
        self._store: Store | None = None
        self._progress = progress or (lambda _msg: None)
        self._recorder = _Recorder()
        self._tracer = _make_tracer(self._recorder)
        self._depth = 0
        self._pipeline_run = 0  # the `pipeline` run being written, while a group is open
        self._flushed = 0

    def sequence(self, sequence_id: str) -> Sequence:
        """One sequence, checked and resolved the first time it is asked for."""
        return self._loader.get(sequence_id)

    @property
    def sequences(self) -> dict[str, Sequence]:
        """Every sequence, checked and resolved (this imports every phase they use)."""
        return self._loader.load_all()

    def store(self) -> Store:
        if self._store is None:
            if self._store_factory is not None:
                self._store = self._store_factory()
            else:
                from agent.store import Store

                self._store = Store.open(self.config.store)
        return self._store

    def close(self) -> None:
        self.flush_spans()
        if self._store is not None and self._store_factory is None:
            self._store.close()
        self._store = None

    def __enter__(self) -> Conductor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def grouped(self) -> Iterator[None]:
        """Plays inside (e.g. one per batch of a large ingest) become one `pipeline` run."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if self._depth == 0:
            self.flush_spans()

    def play(self, sequence_id: str, baton: Any, *, deadline: float | None = None) -> Any:
        """Run every beat of one sequence in order and return the final baton."""
        seq = self._loader.get(sequence_id)
        deadline = math.inf if deadline is None else deadline
        self._depth += 1
        try:
            with self._tracer.start_as_current_span(f"sequence {seq.id}") as span:
                span.set_attribute("selfheal.sequence", seq.id)
                for beat in seq.beats:
                    baton = self._run_beat(seq, beat, baton, deadline)
        finally:
            self._depth -= 1
        if self._depth == 0:
            self.flush_spans()
        return baton

    def _run_beat(self, seq: Sequence, beat: Beat, baton: Any, deadline: float) -> Any:
        from opentelemetry.trace import Status, StatusCode

        attempts = beat.on_error.attempts if beat.on_error.policy == "retry" else 1
        for attempt in range(1, attempts + 1):
            started = time.monotonic()
            ctx = BeatContext(
                config=self.config,
                conductor=self,
                sequence=seq.id,
                beat=beat.number,
                handler=beat.handler.name,
                kind=beat.handler.kind,
                deadline=min(deadline, started + beat.timing_s),
                progress=self._progress,
            )
            with self._tracer.start_as_current_span(beat.event) as span:
                span.set_attributes(
                    {
                        "selfheal.sequence": seq.id,
                        "selfheal.beat": beat.number,
                        "selfheal.handler": beat.handler.name,
                        "selfheal.kind": beat.handler.kind.value,
                        "selfheal.attempt": attempt,
                    }
                )
                try:
                    result = beat.handler.func(baton, ctx)
                except Exception as exc:
                    span.record_exception(exc)
                    span.set_status(Status(StatusCode.ERROR, str(exc)))
                    span.set_attribute("selfheal.outcome", "error")
                    if attempt < attempts:
                        log.warning("%s beat %d failed, retrying: %s", seq.id, beat.number, exc)
                        continue
                    if beat.on_error.policy == "continue":
                        log.warning("%s beat %d failed, continuing: %s", seq.id, beat.number, exc)
                        return baton
                    raise BeatError(seq.id, beat.number, beat.handler.name, exc) from exc
                elapsed = time.monotonic() - started
                span.set_attribute("selfheal.outcome", "ok")
                span.set_attribute("selfheal.overran", elapsed > beat.timing_s)
                return result
        return baton  # unreachable: the loop returns or raises on its last attempt

    def flush_spans(self, *, final: bool = True) -> None:
        """Write the beat spans collected so far into the store, as a `pipeline` run.

        `final=False` inside a group: write what is there now and keep the run open for the
        rest (a long group, such as a test run stored while its tests run, then has few spans
        left to write when it ends).
        """
        events, self._recorder.events = self._recorder.events, []
        if (events or self._pipeline_run) and (
            self._store is not None or self._store_factory is not None or self.config.store.exists()
        ):
            store = self.store()
            if not self._pipeline_run:
                self._pipeline_run = store.begin_run("pipeline")
            if events:
                store.insert_events(self._pipeline_run, events)
            self._flushed += len(events)
            if final:
                store.end_run(self._pipeline_run, "ok", {"beats": self._flushed})
        if final:
            self._pipeline_run = self._flushed = 0

    @property
    def beat_spans(self) -> list[TelemetryEvent]:
        """Spans recorded and not yet flushed (for tests and progress reports)."""
        return list(self._recorder.events)


def _make_tracer(recorder: _Recorder) -> Tracer:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

    class _Processor(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            recorder.on_end(span)

    provider = TracerProvider(resource=Resource.create({"service.name": "selfheal"}))
    provider.add_span_processor(_Processor())
    return provider.get_tracer("selfheal.conductor")


def check_directory(
    directory: Path | None, registry: Registry | None = None, overlay: Path | None = None
) -> list[Sequence]:
    """The full check of `selfheal sequences check`: every sequence and every handler source.

    Unlike a play, this reads the entry points even when no sequence needs them, so a
    third-party handler that reuses a builtin name is reported here. Raises SequenceError
    with every problem, one line each.
    """
    registry = default_registry() if registry is None else registry
    problems: list[str] = []
    try:
        registry.load_all()
    except SequenceError as exc:
        problems.extend(str(exc).splitlines())
    try:
        seqs = list(load_sequences(directory, registry, overlay).values())
    except SequenceError as exc:
        problems.extend(str(exc).splitlines())
    if problems:
        raise SequenceError("\n".join(dict.fromkeys(problems)))
    return seqs


def describe(seqs: Iterable[Sequence]) -> list[str]:
    return [f"{s.id}: {len(s.beats)} beats ({s.file.name})" for s in seqs]
