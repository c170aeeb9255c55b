"""The seed's nine records as frozen dataclasses, with enums and an explicit JSON round trip."""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar, Union

# Attribute values as OpenTelemetry allows them (scalars only; sequences are joined to str).
AttrValue = str | int | float | bool
Evidence = dict[str, str | int | float | bool]


class SpanStatus(enum.Enum):
    UNSET = "unset"
    OK = "ok"
    ERROR = "error"


class EventSource(enum.Enum):
    SPAN = "span"  # an OpenTelemetry span (app, exporter, receiver, OTLP file)
    TEST = "test"  # one pytest test, recorded by the plugin
    LOG = "log"  # one line of a JSON-lines application log
    BEAT = "beat"  # one beat of our own pipeline (the pipeline observes itself)


class AnomalyKind(enum.Enum):
    PERFORMANCE = "performance"
    BEHAVIORAL = "behavioral"
    COVERAGE = "coverage"
    ERROR = "error"
    STATE = "state"
    DEPENDENCY = "dependency"


class Severity(enum.Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}


class FixType(enum.Enum):
    CODE = "code"
    TEST = "test"
    DOCUMENTATION = "documentation"
    SEQUENCE = "sequence"


class Effort(enum.Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class DeploymentStatus(enum.Enum):
    PENDING = "pending"
    APPROVED = "approved"
    PROPOSED = "proposed"  # branch (and PR) made, waiting for a human
    MERGED = "merged"
    DEPLOYED = "deployed"
    REJECTED = "rejected"  # refused by policy before anything was written
    REVERTED = "reverted"  # verification failed and the merge was undone
    FAILED = "failed"


class VerificationStatus(enum.Enum):
    PENDING = "pending"
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class CodeLocation:
    """A place in the code: repository-relative path, function (qualified name) and line."""

    file: str = ""
    function: str = ""
    line: int = 0


@dataclass(frozen=True)
class TelemetryEvent:
    """One span, test or log line after normalisation; durations and times in nanoseconds."""

    source: EventSource
    service: str
    operation: str
    start_ns: int
    duration_ns: int
    status: SpanStatus = SpanStatus.UNSET
    version: str = ""
    trace_id: str = ""
    span_id: str = ""
    parent_span_id: str = ""
    parent_operation: str = ""
    location: CodeLocation = CodeLocation()
    exception_type: str = ""
    exception_message: str = ""
    exception_stacktrace: str = ""
    exception_signature: str = ""
    attributes: dict[str, AttrValue] = field(default_factory=dict)


@dataclass(frozen=True)
class CallEdge:
    parent: str
    child: str
    count: int


@dataclass(frozen=True)
class SignatureCount:
    signature: str
    count: int


@dataclass(frozen=True)
class TelemetryMetrics:
    """Aggregates for one (service, operation, version) over a window."""

    service: str
    operation: str
    version: str
    count: int
    error_count: int
    mean_ns: float
    p50_ns: float
    p95_ns: float
    p99_ns: float
    min_ns: int
    max_ns: int
    window_start_ns: int
    window_end_ns: int
    edges: tuple[CallEdge, ...] = ()
    exceptions: tuple[SignatureCount, ...] = ()
    sketch: tuple[tuple[int, int], ...] = ()  # (bucket index, count) of the quantile sketch
    location: CodeLocation = CodeLocation()

    @property
    def error_rate(self) -> float:
        return self.error_count / self.count if self.count else 0.0


@dataclass(frozen=True)
class Anomaly:
    """Something that changed for the worse, with the numbers behind it."""

    id: str
    kind: AnomalyKind
    subtype: str  # e.g. "slowdown", "new_failure", "flaky", "n_plus_one", "uncovered_change"
    severity: Severity
    confidence: float
    subject: str  # test node id, or "service/operation"
    description: str
    detected_ns: int
    run_id: int = 0
    baseline_run_id: int = 0
    commit: str = ""
    baseline_commit: str = ""
    location: CodeLocation = CodeLocation()
    tests: tuple[str, ...] = ()  # the tests that show it (failing, slow, covering)
    evidence: Evidence = field(default_factory=dict)


@dataclass(frozen=True)
class RootCause:
    description: str
    location: CodeLocation = CodeLocation()
    score: float = 0.0
    evidence: Evidence = field(default_factory=dict)


@dataclass(frozen=True)
class Impact:
    tests: int = 0
    requests: int = 0
    users: int = 0
    severity: Severity = Severity.LOW
    description: str = ""


@dataclass(frozen=True)
class FixRecommendation:
    type: FixType
    strategy: str
    priority: int
    effort: Effort
    expected_benefit: float
    rationale: str = ""


@dataclass(frozen=True)
class Diagnosis:
    id: str
    anomaly_id: str
    created_ns: int
    root_causes: tuple[RootCause, ...] = ()
    affected_code: tuple[CodeLocation, ...] = ()
    impact: Impact = Impact()
    suggested_fixes: tuple[FixRecommendation, ...] = ()
    culprit_commit: str = ""
    baseline_commit: str = ""
    evidence: Evidence = field(default_factory=dict)


@dataclass(frozen=True)
class Patch:
    id: str
    anomaly_id: str
    diagnosis_id: str
    strategy: str
    fix_type: FixType
    diff: str
    base_commit: str
    created_ns: int
    files: tuple[str, ...] = ()
    code_changes: int = 0  # changed lines in source files
    test_changes: int = 0  # changed lines in test files
    doc_changes: int = 0  # changed lines in documentation
    syntax_valid: bool = True
    syntax_errors: tuple[str, ...] = ()
    description: str = ""

    @property
    def size(self) -> int:
        return self.code_changes + self.test_changes + self.doc_changes


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    reason: str = ""


@dataclass(frozen=True)
class ValidationResult:
    id: str
    patch_id: str
    passed: bool
    created_ns: int
    duration_ns: int = 0
    tests_passed: int = 0
    tests_failed: int = 0
    tests_skipped: int = 0
    coverage_before: float | None = None
    coverage_after: float | None = None
    changed_lines_coverage: float | None = None
    performance_before_ns: float | None = None
    performance_after_ns: float | None = None
    documentation_valid: bool = True
    checks: tuple[CheckResult, ...] = ()
    target_commit: str = ""

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(f"{c.name}: {c.reason}" for c in self.checks if not c.passed)


@dataclass(frozen=True)
class Deployment:
    id: str
    patch_id: str
    mode: str  # off | propose | pr | merge
    status: DeploymentStatus
    created_ns: int
    anomaly_id: str = ""
    branch: str = ""
    commit: str = ""
    target_branch: str = ""
    target_commit: str = ""
    pr_number: int | None = None
    pr_url: str = ""
    verification: VerificationStatus = VerificationStatus.PENDING
    reason: str = ""


@dataclass(frozen=True)
class EffectivenessData:
    id: str
    deployment_id: str
    anomaly_id: str
    anomaly_kind: AnomalyKind
    strategy: str
    measured_ns: int
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)
    performance_improvement: float = 0.0
    error_improvement: float = 0.0
    coverage_improvement: float = 0.0
    success: bool = False
    time_to_heal_ns: int = 0
    insights: tuple[str, ...] = ()
    # Added by the learning phase: which patch, where git shows it applied, how many later
    # runs measured it, and whether its outcome has been counted in the strategy model.
    patch_id: str = ""
    applied_commit: str = ""
    runs_after: int = 0
    outcome: str = "pending"  # pending | success | failure
    counted: bool = False


Record = (
    TelemetryEvent
    | TelemetryMetrics
    | Anomaly
    | Diagnosis
    | FixRecommendation
    | Patch
    | ValidationResult
    | Deployment
    | EffectivenessData
)

RECORD_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        TelemetryEvent,
        TelemetryMetrics,
        Anomaly,
        Diagnosis,
        FixRecommendation,
        Patch,
        ValidationResult,
        Deployment,
        EffectivenessData,
    )
}

T = TypeVar("T")


ALT_TAG = "record"  # the type tag of records that have a field named `type`


def to_json(record: Any) -> dict[str, Any]:
    """Encode a record as a JSON-ready dict tagged with its type name."""
    if type(record) is TelemetryEvent:
        return _event_json(record)
    body = _encode(record)
    assert isinstance(body, dict)
    # FixRecommendation has a field called `type`: its tag goes under ALT_TAG instead.
    tag = ALT_TAG if "type" in body else "type"
    return {tag: type(record).__name__, **body}


def from_json(data: dict[str, Any], expected: type[T] | None = None) -> T:
    """Decode what `to_json` wrote; raise ValueError naming the problem on bad input."""
    tag = ALT_TAG if ALT_TAG in data else "type"
    name = data.get(tag)
    cls = RECORD_TYPES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown record type {name!r}")
    if expected is not None and cls is not expected:
        raise ValueError(f"expected a {expected.__name__} record, got {name}")
    body = {k: v for k, v in data.items() if k != tag}
    if cls is TelemetryEvent:
        # The spool reader decodes every span: a direct path, ~8x faster than the walk.
        fast = _event_from_json(body)
        if fast is not None:
            return fast  # type: ignore[return-value]
    result: T = _decode(cls, body)
    return result


_EVENT_FIELDS = frozenset(f.name for f in dataclasses.fields(TelemetryEvent))
_EVENT_REQUIRED = ("source", "service", "operation", "start_ns", "duration_ns")
_EVENT_INTS = frozenset({"start_ns", "duration_ns"})
_EVENT_NOT_STR = frozenset({"source", "status", "location", "attributes"}) | _EVENT_INTS
_SOURCES = {m.value: m for m in EventSource}
_STATUSES = {m.value: m for m in SpanStatus}
_ATTR_TYPES = (str, int, float, bool)


def _event_from_json(body: dict[str, Any]) -> TelemetryEvent | None:
    """A well-formed TelemetryEvent body decoded directly; None sends anything unusual (and
    every error) the generic way, so both paths accept and refuse exactly the same input."""
    if not body.keys() <= _EVENT_FIELDS or not all(k in body for k in _EVENT_REQUIRED):
        return None
    try:
        source = _SOURCES[body["source"]]
        status = _STATUSES[body.get("status", "unset")]
    except (KeyError, TypeError):
        return None
    for key, value in body.items():
        if key in _EVENT_INTS:
            if type(value) is not int:
                return None
        elif key not in _EVENT_NOT_STR and type(value) is not str:
            return None
    location = _location_from_json(body.get("location"))
    attributes = body.get("attributes", {})
    if location is None or type(attributes) is not dict:
        return None
    if not all(type(v) in _ATTR_TYPES for v in attributes.values()):
        return None
    fields = {**body, "source": source, "status": status, "location": location}
    return TelemetryEvent(**{**fields, "attributes": dict(attributes)})


def _location_from_json(value: Any) -> CodeLocation | None:
    if value is None:
        return CodeLocation()
    if type(value) is not dict or not value.keys() <= {"file", "function", "line"}:
        return None
    file, function, line = value.get("file", ""), value.get("function", ""), value.get("line", 0)
    if type(file) is not str or type(function) is not str or type(line) is not int:
        return None
    return CodeLocation(file, function, line)


_EVENT_PLAN: list[tuple[str, str]] = []
# The TelemetryEvent fields written out by hand here and in the telemetry phase's row builder;
# a field added later makes both go the generic way, so no field is ever left out.
EVENT_HAND_FIELDS = (
    "source",
    "service",
    "operation",
    "start_ns",
    "duration_ns",
    "status",
    "version",
    "trace_id",
    "span_id",
    "parent_span_id",
    "parent_operation",
    "location",
    "exception_type",
    "exception_message",
    "exception_stacktrace",
    "exception_signature",
    "attributes",
)


def _event_json(event: TelemetryEvent) -> dict[str, Any]:
    """`to_json` for the hottest record (every span) without the generic walk: ~5x faster."""
    if not _EVENT_PLAN:
        _EVENT_PLAN.extend(_event_plan())
    if _EVENT_PLAN[0][1] == "literal":
        return _event_literal(event)
    out: dict[str, Any] = {"type": "TelemetryEvent"}
    for name, how in _EVENT_PLAN:
        value = getattr(event, name)
        if how == "plain":
            out[name] = value
        elif how == "enum":
            out[name] = value.value
        elif name == "location":
            out[name] = {"file": value.file, "function": value.function, "line": value.line}
        elif name == "attributes":
            out[name] = dict(value)
        else:
            out[name] = _encode(value)
    return out


def _event_plan() -> list[tuple[str, str]]:
    names = [f.name for f in dataclasses.fields(TelemetryEvent)]
    if tuple(names) == EVENT_HAND_FIELDS:
        return [("*", "literal")]
    hints = _hints(TelemetryEvent)
    plan = []
    for name in names:
        tp = hints[name]
        how = "plain" if tp in (str, int, float, bool) else "other"
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            how = "enum"
        plan.append((name, how))
    return plan


def _event_literal(e: TelemetryEvent) -> dict[str, Any]:
    loc = e.location
    return {
        "type": "TelemetryEvent",
        "source": e.source._value_,  # not .value: the enum property is a Python call
        "service": e.service,
        "operation": e.operation,
        "start_ns": e.start_ns,
        "duration_ns": e.duration_ns,
        "status": e.status._value_,
        "version": e.version,
        "trace_id": e.trace_id,
        "span_id": e.span_id,
        "parent_span_id": e.parent_span_id,
        "parent_operation": e.parent_operation,
        "location": {"file": loc.file, "function": loc.function, "line": loc.line},
        "exception_type": e.exception_type,
        "exception_message": e.exception_message,
        "exception_stacktrace": e.exception_stacktrace,
        "exception_signature": e.exception_signature,
        "attributes": dict(e.attributes),
    }


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    return value


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = typing.get_type_hints(cls)
        _HINTS[cls] = hints
    return hints


def _decode(tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        return _decode_union(args, value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _decode_dataclass(tp, value)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(value)
    if origin is tuple:
        args = typing.get_args(tp)
        _expect(value, list, tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v) for v in value)
        return tuple(_decode(a, v) for a, v in zip(args, value, strict=True))
    if origin is dict:
        _, vtype = typing.get_args(tp)
        _expect(value, dict, tp)
        return {k: _decode(vtype, v) for k, v in value.items()}
    return _decode_scalar(tp, value)


def _decode_union(args: tuple[Any, ...], value: Any) -> Any:
    # Scalar unions (AttrValue): keep the JSON type, bool before int since bool is an int.
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _decode(arg, value)
        except (TypeError, ValueError):
            continue
    raise ValueError(f"value {value!r} matches none of {args}")


def _decode_dataclass(cls: type[Any], value: Any) -> Any:
    _expect(value, dict, cls)
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(value) - names
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown fields {sorted(unknown)}")
    return cls(**{k: _decode(hints[k], v) for k, v in value.items()})


def _decode_scalar(tp: Any, value: Any) -> Any:
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"expected a number, got {value!r}")
        return float(value)
    if tp is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise TypeError(f"expected an integer, got {value!r}")
    if tp is bool and not isinstance(value, bool):
        raise TypeError(f"expected a boolean, got {value!r}")
    if tp is str and not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _expect(value: Any, kind: type[Any], tp: Any) -> None:
    if not isinstance(value, kind):
        raise TypeError(f"expected {kind.__name__} for {tp}, got {type(value).__name__}")
