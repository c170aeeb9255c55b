"""Spans per second through BatchSpanProcessor: our exporter against the SDK's own exporters.

    python bench/exporter.py [--spans N] [--runs R]

Each measurement is a fresh app process that makes N spans (a request span with typical HTTP
and code.* attributes, and a child) in a tight loop, then force_flush: the figure is spans
delivered per second from the first span to the end of the flush, with nothing dropped (the
processor's queue holds them all). Exporters compared, all behind the same BatchSpanProcessor:
- InMemorySpanExporter (the SDK's; a list append) vs ours writing the spool; also a discarding
  exporter, the true ceiling: InMemorySpanExporter keeps all N spans alive, and the garbage
  collector's passes over them make it slower than exporters that let spans go;
- the SDK's OTLP/HTTP exporter vs ours in direct mode, both POSTing to our receiver, which runs
  in this driver process (another process, as the agent is) and discards what it decodes.
Targets: spool vs in-memory >= 0.9; ours vs the SDK's OTLP/HTTP >= 1.0. Medians of R runs;
the app process's CPU per span is printed too (steadier than wall time on a loaded machine).
"""

from __future__ import annotations

import _path  # noqa: F401 - first: bench/ off sys.path (see bench/_path.py)

# isort: split

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

MODES = ("inmemory", "discard", "selfheal-spool", "sdk-otlp", "selfheal-otlp")


def app_main(mode: str, spans: int, target: str) -> None:
    """The measured process: print spans/s and how many spans the exporter delivered."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

    exporter: SpanExporter
    if mode == "discard":
        exporter = make_discard()  # type: ignore[assignment]
    elif mode == "inmemory":
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
    elif mode == "sdk-otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=target)
    else:
        from agent.exporter import SelfHealSpanExporter

        if mode == "selfheal-spool":
            exporter = SelfHealSpanExporter(spool_dir=target)
        else:
            exporter = SelfHealSpanExporter(endpoint=target)
    provider = TracerProvider(
        resource=Resource.create({"service.name": "shop", "service.version": "1.4.2"})
    )
    provider.add_span_processor(
        BatchSpanProcessor(exporter, max_queue_size=spans + 1, max_export_batch_size=512)
    )
    tracer = provider.get_tracer("bench")
    attrs = {
        "http.request.method": "GET",
        "http.route": "/items/{id}",
        "http.response.status_code": 200,
        "code.function.name": "shop.views.item",
        "code.file.path": "shop/views.py",
        "code.line.number": 42,
    }
    child = {"db.system": "postgresql", "code.function.name": "shop.repo.load"}
    started = time.perf_counter()
    cpu_started = time.process_time()  # this process's CPU, every thread: steadier under load
    for _ in range(spans // 2):
        with (
            tracer.start_as_current_span("GET /items/{id}", attributes=attrs),
            tracer.start_as_current_span("SELECT items", attributes=child),
        ):
            pass
    provider.force_flush(timeout_millis=600_000)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    delivered = spans // 2 * 2
    if mode == "discard":
        delivered = exporter.count  # type: ignore[attr-defined]
    elif mode == "inmemory":
        delivered = len(exporter.get_finished_spans())  # type: ignore[attr-defined]
    elif mode.startswith("selfheal"):
        delivered = exporter.stats.exported  # type: ignore[attr-defined]
    provider.shutdown()
    print(json.dumps({"rate": delivered / elapsed, "delivered": delivered, "cpu": cpu}))


def _discard_class() -> type:
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class Discard(SpanExporter):
        """Counts and drops: the true ceiling. InMemorySpanExporter keeps every span alive, and
        the garbage collector's passes over them cost it more than exporting costs ours."""

        def __init__(self) -> None:
            self.count = 0

        def export(self, spans: object) -> SpanExportResult:
            self.count += len(spans)  # type: ignore[arg-type]
            return SpanExportResult.SUCCESS

    return Discard


def make_discard() -> object:
    return _discard_class()()


def measure(mode: str, spans: int, target: str) -> tuple[float, int, float]:
    proc = subprocess.run(
        [sys.executable, __file__, "--app", mode, str(spans), target],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        raise SystemExit(f"{mode} failed:\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return float(result["rate"]), int(result["delivered"]), float(result["cpu"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=40_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from agent.receiver import Receiver, ReceiverSettings

    rates: dict[str, list[float]] = {m: [] for m in MODES}
    cpus: dict[str, list[float]] = {m: [] for m in MODES}  # app CPU us per span
    with (
        tempfile.TemporaryDirectory() as tmp,
        Receiver(
            lambda events: None, ReceiverSettings(port=0, max_queue_spans=1_000_000)
        ) as receiver,
    ):
        for run in range(args.runs):
            for mode in MODES:
                target = f"{tmp}/spool-{run}" if mode == "selfheal-spool" else receiver.url
                before = receiver.stats.accepted_spans
                rate, delivered, cpu = measure(mode, args.spans, target)
                if mode == "sdk-otlp":
                    delivered = receiver.stats.accepted_spans - before
                if delivered != args.spans // 2 * 2:
                    raise SystemExit(f"{mode}: {delivered} of {args.spans} spans delivered")
                rates[mode].append(rate)
                cpus[mode].append(cpu / delivered * 1e6)
                print(
                    f"run {run + 1} {mode:15s} {rate:10,.0f} spans/s "
                    f"(app CPU {cpus[mode][-1]:.1f} us/span)"
                )
    med = {m: statistics.median(r) for m, r in rates.items()}
    spool_ratio = med["selfheal-spool"] / med["inmemory"]
    otlp_ratio = med["selfheal-otlp"] / med["sdk-otlp"]
    spool_vs_sdk = med["selfheal-spool"] / med["sdk-otlp"]
    print("median spans/s: " + ", ".join(f"{m} {v:,.0f}" for m, v in med.items()))
    print(f"ours (spool) / InMemorySpanExporter: {spool_ratio:.2f} (target >= 0.90)")
    print(f"ours (OTLP/HTTP) / SDK OTLP/HTTP exporter: {otlp_ratio:.2f} (target >= 1.00)")
    print(f"ours (spool) / SDK OTLP/HTTP exporter: {spool_vs_sdk:.2f}")
    print(
        "ours (spool) / a discarding exporter (no span kept): "
        f"{med['selfheal-spool'] / med['discard']:.2f}"
    )
    cpu = {m: statistics.median(c) for m, c in cpus.items()}
    print("median app CPU us/span: " + ", ".join(f"{m} {v:.1f}" for m, v in cpu.items()))
    print(
        f"CPU-time ratios (spans per CPU second): spool / in-memory "
        f"{cpu['inmemory'] / cpu['selfheal-spool']:.2f}, spool / discard "
        f"{cpu['discard'] / cpu['selfheal-spool']:.2f}, ours / SDK OTLP/HTTP "
        f"{cpu['sdk-otlp'] / cpu['selfheal-otlp']:.2f}"
    )
    ok = spool_ratio >= 0.9 and otlp_ratio >= 1.0
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--app":
        app_main(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        raise SystemExit(0)
    raise SystemExit(main())
