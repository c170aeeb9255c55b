"""A small shop instrumented with the OpenTelemetry API; SHOP_VERSION=B brings two regressions."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from typing import Any

from opentelemetry import trace

VERSION = os.environ.get("SHOP_VERSION", "A")
tracer = trace.get_tracer("shop")


def traced(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A span per call, with the code.* attributes auto-instrumentation would set."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        attrs = {
            "code.function": fn.__qualname__,
            "code.namespace": fn.__module__,
            "code.filepath": fn.__code__.co_filename,
            "code.lineno": fn.__code__.co_firstlineno,
        }

        @functools.wraps(fn)
        def call(*args: Any) -> Any:
            with tracer.start_as_current_span(name, attributes=attrs):
                return fn(*args)

        return call

    return wrap


@traced("SELECT item")
def load_item(item: int) -> int:
    time.sleep(0.001)
    return item * 10


@traced("GET /items")
def list_items() -> list[int]:
    items = [load_item(i) for i in range(3)]
    if VERSION == "B":
        time.sleep(0.015)  # the regression: version B sorts the slow way
    return items


def price(basket: int) -> int:
    if VERSION == "B" and basket % 3 == 0:
        raise ValueError(f"basket {basket} has a negative total")
    return basket * 2


@traced("POST /checkout")
def checkout(basket: int) -> int:
    time.sleep(0.002)
    return price(basket)
