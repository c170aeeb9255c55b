"""Records: every one of the nine survives a JSON text round trip unchanged."""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from typing import Any, Union

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import records as rec

NINE = [
    rec.TelemetryEvent,
    rec.TelemetryMetrics,
    rec.Anomaly,
    rec.Diagnosis,
    rec.FixRecommendation,
    rec.Patch,
    rec.ValidationResult,
    rec.Deployment,
    rec.EffectivenessData,
]


def strategy_for(tp: Any) -> st.SearchStrategy[Any]:
    """A strategy from a record field's type hint (floats finite: NaN never equals itself)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return st.one_of(*(strategy_for(arg) for arg in typing.get_args(tp)))
    if tp is type(None):
        return st.none()
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return record_strategy(tp)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return st.sampled_from(list(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(strategy_for(args[0]), max_size=3).map(tuple)
        return st.tuples(*(strategy_for(a) for a in args))
    if origin is dict:
        key, value = typing.get_args(tp)
        return st.dictionaries(strategy_for(key), strategy_for(value), max_size=3)
    scalars: dict[Any, st.SearchStrategy[Any]] = {
        str: st.text(max_size=20),
        int: st.integers(min_value=-(2**63), max_value=2**63 - 1),
        float: st.floats(allow_nan=False, allow_infinity=False),
        bool: st.booleans(),
    }
    return scalars[tp]


def record_strategy(cls: type[Any]) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    fields = {f.name: strategy_for(hints[f.name]) for f in dataclasses.fields(cls)}
    return st.builds(cls, **fields)


@pytest.mark.parametrize("cls", NINE, ids=lambda c: c.__name__)
def test_json_round_trip(cls: type[Any]) -> None:
    @settings(max_examples=60, deadline=None)
    @given(record_strategy(cls))
    def check(record: Any) -> None:
        text = json.dumps(rec.to_json(record))
        assert rec.from_json(json.loads(text), cls) == record

    check()


def test_nine_records_are_frozen() -> None:
    for cls in NINE:
        params = getattr(cls, "__dataclass_params__", None)
        assert params is not None and params.frozen, cls.__name__


def test_decode_refuses_wrong_type_and_unknown_fields() -> None:
    event = rec.TelemetryEvent(rec.EventSource.SPAN, "svc", "op", 1, 2)
    data = rec.to_json(event)
    with pytest.raises(ValueError, match="expected a TelemetryMetrics"):
        rec.from_json(data, rec.TelemetryMetrics)
    with pytest.raises(ValueError, match="unknown fields"):
        rec.from_json({**data, "surprise": 1}, rec.TelemetryEvent)
    with pytest.raises(ValueError, match="unknown record type"):
        rec.from_json({"type": "Nope"})


@pytest.mark.parametrize(
    "change",
    [
        {"start_ns": 1.0},
        {"duration_ns": True},
        {"service": 3},
        {"source": "nope"},
        {"status": None},
        {"attributes": {"x": None}},
        {"attributes": []},
        {"location": {"line": True}},
        {"location": {"file": "a.py", "column": 1}},
    ],
)
def test_event_fast_path_refuses_what_the_generic_decoder_refuses(change: dict[str, Any]) -> None:
    event = rec.TelemetryEvent(rec.EventSource.SPAN, "svc", "op", 1, 2)
    data = {**rec.to_json(event), **change}
    with pytest.raises((TypeError, ValueError)):
        rec.from_json(data, rec.TelemetryEvent)
