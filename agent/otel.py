"""The one boundary with the OpenTelemetry SDK: finished spans become TelemetryEvents."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agent.records import AttrValue, CodeLocation, EventSource, SpanStatus, TelemetryEvent

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

# Semantic-convention names, new first; the old ones are still emitted by many libraries.
CODE_FUNCTION = ("code.function.name", "code.function")
CODE_FILE = ("code.file.path", "code.filepath")
CODE_LINE = ("code.line.number", "code.lineno")
CODE_NAMESPACE = "code.namespace"


def first_attr(attrs: Mapping[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        value = attrs.get(name)
        if value is not None and value != "":
            return value
    return None


def code_location(attrs: Mapping[str, Any]) -> CodeLocation:
    """Read a code location under either the old or the new semantic-convention names."""
    function = first_attr(attrs, CODE_FUNCTION) or ""
    namespace = attrs.get(CODE_NAMESPACE)
    if namespace and function and "." not in str(function):
        function = f"{namespace}.{function}"
    line = first_attr(attrs, CODE_LINE)
    try:
        lineno = int(line) if line is not None else 0
    except (TypeError, ValueError):
        lineno = 0
    return CodeLocation(
        file=str(first_attr(attrs, CODE_FILE) or ""), function=str(function), line=lineno
    )


_LOCATIONS: dict[tuple[object, ...], CodeLocation] = {}
_MAX_LOCATIONS = 65_536
_NO_CODE = (None,) * 7
NO_LOCATION = CodeLocation()


def shared_code_location(attrs: Mapping[str, Any]) -> CodeLocation:
    """`code_location`, one shared record per distinct set of code attributes: the spans of
    one function carry the same ones, and receivers and ingest read it for every span."""
    get = attrs.get
    key = (
        get(CODE_FUNCTION[0]),
        get(CODE_FUNCTION[1]),
        get(CODE_FILE[0]),
        get(CODE_FILE[1]),
        get(CODE_LINE[0]),
        get(CODE_LINE[1]),
        get(CODE_NAMESPACE),
    )
    if key == _NO_CODE:
        return NO_LOCATION
    found = _LOCATIONS.get(key)
    if found is None:
        if len(_LOCATIONS) >= _MAX_LOCATIONS:
            _LOCATIONS.clear()
        found = _LOCATIONS[key] = code_location(attrs)
    return found


_SCALARS = frozenset({str, int, float, bool})  # exact types first: a set lookup is cheap


def plain_attributes(attrs: Mapping[str, Any] | None) -> dict[str, AttrValue]:
    """OTel attribute values as our scalar types: sequences are joined with commas."""
    out: dict[str, AttrValue] = {}
    for key, value in (attrs or {}).items():
        if type(value) in _SCALARS or isinstance(value, str | int | float | bool):
            out[key] = value
        elif isinstance(value, list | tuple):
            out[key] = ",".join(str(v) for v in value)
        elif value is not None:
            out[key] = str(value)
    return out


def exception_signature(exc_type: str, stacktrace: str, location: CodeLocation) -> str:
    """type + deepest frame: the last `File "...", line N, in f` of a Python traceback."""
    if not exc_type:
        return ""
    frame = deepest_frame(stacktrace)
    if frame:
        return f"{exc_type}@{frame}"
    if location.function:
        return f"{exc_type}@{location.file}:{location.function}"
    return exc_type


def deepest_frame(stacktrace: str, project_root: str = "") -> str:
    """`path:function` of the deepest traceback frame, preferring frames under project_root."""
    frames: list[str] = []
    for line in stacktrace.splitlines():
        text = line.strip()
        if not text.startswith('File "'):
            continue
        try:
            path = text.split('"', 2)[1]
            func = text.rsplit(", in ", 1)[1].strip()
        except IndexError:
            continue
        frames.append(f"{path}:{func}")
    if not frames:
        return ""
    if project_root:
        own = [f for f in frames if f.startswith(project_root) and "site-packages" not in f]
        if own:
            return own[-1]
    return frames[-1]


def span_to_event(span: ReadableSpan, source: EventSource = EventSource.SPAN) -> TelemetryEvent:
    """Convert one finished SDK span; never raises on odd attribute values."""
    ctx = span.context
    parent = span.parent
    exception = ("", "", "")
    for event in span.events:
        if event.name == "exception":
            ev = event.attributes or {}
            exception = (
                str(ev.get("exception.type", "")),
                str(ev.get("exception.message", "")),
                str(ev.get("exception.stacktrace", "")),
            )
    start = span.start_time or 0
    return span_event(
        source,
        _resource_names(span.resource),
        span.name,
        times=(start, span.end_time or start),
        status=_status(span.status.status_code),
        ids=(
            f"{ctx.trace_id:032x}" if ctx is not None else "",
            f"{ctx.span_id:016x}" if ctx is not None else "",
            f"{parent.span_id:016x}" if parent is not None else "",
        ),
        exception=exception,
        attrs=_span_attributes(span),
    )


def span_event(
    source: EventSource,
    names: tuple[str, str],
    operation: str,
    *,
    times: tuple[int, int],
    status: SpanStatus,
    ids: tuple[str, str, str],
    exception: tuple[str, str, str],
    attrs: Mapping[str, Any],
) -> TelemetryEvent:
    """One span's parts as an event, however they were carried: (service, version) `names`,
    (start, end) `times`, (trace, span, parent) hex `ids`, (type, message, stack) `exception`.
    The code location and the exception signature come from them; attributes are made plain."""
    (service, version), (start, end) = names, times
    trace_id, span_id, parent_span_id = ids
    exc_type, exc_message, exc_stack = exception
    location = code_location(attrs)
    return TelemetryEvent(
        source=source,
        service=service,
        version=version,
        operation=operation,
        start_ns=start,
        duration_ns=max(0, end - start),
        status=status,
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_span_id,
        location=location,
        exception_type=exc_type,
        exception_message=exc_message,
        exception_stacktrace=exc_stack,
        exception_signature=exception_signature(exc_type, exc_stack, location) if exc_type else "",
        attributes=plain_attributes(attrs),
    )


# The exporter converts every span an app makes, so the per-span work is kept small: the
# resource (shared by all spans of a provider) is read once, and attributes are read from the
# SDK's plain dict when it has one instead of through its Mapping ABC (several times slower).
_RESOURCES: dict[int, tuple[Any, str, str]] = {}
_STATUS: list[Any] = []


def _span_attributes(span: ReadableSpan) -> Mapping[str, Any]:
    inner = getattr(getattr(span, "_attributes", None), "_dict", None)
    if isinstance(inner, dict):
        return inner
    return dict(span.attributes or {})


def _resource_names(resource: Any) -> tuple[str, str]:
    if resource is None:
        return "unknown_service", ""
    cached = _RESOURCES.get(id(resource))
    if cached is not None and cached[0] is resource:
        return cached[1], cached[2]
    attrs = dict(resource.attributes)
    names = str(attrs.get("service.name", "unknown_service")), str(attrs.get("service.version", ""))
    if len(_RESOURCES) > 64:
        _RESOURCES.clear()
    _RESOURCES[id(resource)] = (resource, *names)  # the object is kept, so its id stays its own
    return names


resource_names = _resource_names  # (service.name, service.version) of an SDK Resource


def _status(code: Any) -> SpanStatus:
    # Identity checks: StatusCode hashing goes through Enum.__hash__, a Python-level call.
    if not _STATUS:
        from opentelemetry.trace import StatusCode

        _STATUS.extend((StatusCode.OK, StatusCode.ERROR))
    if code is _STATUS[1]:
        return SpanStatus.ERROR
    if code is _STATUS[0]:
        return SpanStatus.OK
    # By name when identity fails: an in-process pytester run restores sys.modules afterwards,
    # and a re-imported opentelemetry.trace has new StatusCode members.
    name = getattr(code, "name", "")
    return {"ERROR": SpanStatus.ERROR, "OK": SpanStatus.OK}.get(name, SpanStatus.UNSET)
