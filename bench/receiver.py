"""Sustained OTLP/HTTP ingest over loopback into the store, in batches of 512 spans.

    python bench/receiver.py [--spans N] [--runs R] [--clients C]

The receiver (with the telemetry-phase sink, raw spans kept; `--sink store` for the store's raw
insert alone) runs in this process; clients run
in a subprocess that encodes realistic spans (a server span with 3-8 children, code.* attributes)
and POSTs them on keep-alive connections, backing off on 503 as the SDK would. The figure is
spans stored per second, from the first request to the last span committed; peak memory is
this process's peak RSS. Targets: at least 20,000 spans/s, peak under 300 MB over 2,000,000.
"""

from __future__ import annotations

import _path  # noqa: F401 - first: bench/ off sys.path (see bench/_path.py)

# isort: split

import argparse
import http.client
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BATCH = 512
TARGET_RATE = 20_000
TARGET_MB = 300


def make_events(rng: random.Random, n: int, start_ns: int) -> list[object]:
    from agent.records import CodeLocation, EventSource, TelemetryEvent

    events: list[object] = []
    while len(events) < n:
        trace_id = f"{rng.getrandbits(128):032x}"
        root = f"{rng.getrandbits(64):016x}"
        route = rng.choice(("/cart", "/checkout", "/items/{id}", "/pay", "/search"))
        events.append(
            TelemetryEvent(
                source=EventSource.SPAN,
                service="shop",
                version="1.4.2",
                operation=f"GET {route}",
                start_ns=start_ns,
                duration_ns=int(rng.lognormvariate(15, 0.5)),
                trace_id=trace_id,
                span_id=root,
                location=CodeLocation("shop/views.py", "shop.views.handle", 12),
                attributes={
                    "http.request.method": "GET",
                    "http.route": route,
                    "http.response.status_code": 200,
                    "code.function.name": "shop.views.handle",
                    "code.file.path": "shop/views.py",
                    "code.line.number": 12,
                },
            )
        )
        for i in range(rng.randint(3, 8)):
            events.append(
                TelemetryEvent(
                    source=EventSource.SPAN,
                    service="shop",
                    version="1.4.2",
                    operation="SELECT items" if i % 3 else "GET inventory",
                    start_ns=start_ns + i,
                    duration_ns=int(rng.lognormvariate(13.5, 0.6)),
                    trace_id=trace_id,
                    span_id=f"{rng.getrandbits(64):016x}",
                    parent_span_id=root,
                    attributes={
                        "db.system": "postgresql",
                        "code.function.name": f"shop.repo.query_{i % 3}",
                        "code.file.path": "shop/repo.py",
                        "code.line.number": 40 + i,
                    },
                )
            )
    return events[:n]


def client_main(port: int, spans: int, clients: int) -> None:
    """Subprocess: encode and POST `spans` spans over `clients` connections; print retries."""
    from agent import otlp

    per_client = spans // clients
    retries = [0] * clients

    def run(index: int) -> None:
        rng = random.Random(index)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        sent = 0
        while sent < per_client:
            n = min(BATCH, per_client - sent)
            body = otlp.encode_protobuf(make_events(rng, n, time.time_ns()))  # type: ignore[arg-type]
            while True:
                conn.request(
                    "POST",
                    "/v1/traces",
                    body=body,
                    headers={"Content-Type": "application/x-protobuf"},
                )
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    break
                if resp.status != 503:
                    raise SystemExit(f"receiver answered {resp.status}")
                retries[index] += 1
                time.sleep(0.02)
            sent += n
        conn.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"retries": sum(retries)}))


def measure(spans: int, clients: int, sink_kind: str) -> dict[str, float]:
    from agent.conductor import Conductor
    from agent.config import load_config
    from agent.receiver import Receiver, ReceiverSettings, phase_sink, wait_until_stored

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = load_config(root, {"store": str(root / "selfheal.db")})
        with Conductor(config) as conductor:
            sink = phase_sink(conductor)
            if sink_kind == "store":
                # The store's own raw insert, as the agent's spool ingest does, without the
                # telemetry phase's normalising and aggregation.
                store = conductor.store()
                run_id = store.begin_run("receiver")
                sink = lambda events: store.insert_events(run_id, events)  # noqa: E731
            receiver = Receiver(sink, ReceiverSettings(port=0)).start()
            try:
                started = time.perf_counter()
                cpu_started = time.process_time()
                client = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--client",
                        str(receiver.port),
                        str(spans),
                        str(clients),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                total = spans // clients * clients
                assert wait_until_stored(receiver, total, timeout=600)
                elapsed = time.perf_counter() - started
                cpu = time.process_time() - cpu_started
            finally:
                receiver.stop()
            stored = conductor.store().conn.execute("SELECT count(*) FROM spans").fetchone()[0]
    if stored < total:
        raise SystemExit(f"lost spans: {stored} stored of {total}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    retries = json.loads(client.stdout.strip().splitlines()[-1])["retries"]
    return {
        "rate": total / elapsed,
        "cpu_us": cpu / total * 1e6,
        "peak_mb": peak_mb,
        "retries": retries,
        "spans": total,
    }


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client_main(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument(
        "--sink",
        choices=("phase", "store"),
        default="phase",
        help="phase: the telemetry phase with raw spans kept (default); store: raw insert only",
    )
    args = parser.parse_args()
    rates = []
    cpus = []
    peak = 0.0
    for run in range(args.runs):
        # Each run in its own process: peak RSS is then that run's own.
        proc = subprocess.run(
            [sys.executable, __file__, "--one", str(args.spans), str(args.clients), args.sink],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode:
            print(proc.stderr, file=sys.stderr)
            return 1
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        rates.append(result["rate"])
        cpus.append(result["cpu_us"])
        peak = max(peak, result["peak_mb"])
        print(
            f"run {run + 1}: {result['spans']:,} spans, {result['rate']:,.0f} spans/s stored, "
            f"peak {result['peak_mb']:.0f} MB, {result['retries']} retries after 503, "
            f"receiver CPU {result['cpu_us']:.1f} us/span (one core: "
            f"{1e6 / result['cpu_us']:,.0f} spans/s)"
        )
    rate = statistics.median(rates)
    print(
        f"median: {rate:,.0f} spans/s (target >= {TARGET_RATE:,}); peak {peak:.0f} MB "
        f"(target < {TARGET_MB} MB)"
    )
    ok = rate >= TARGET_RATE and peak < TARGET_MB
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        print(json.dumps(measure(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])))
        raise SystemExit(0)
    raise SystemExit(main())
