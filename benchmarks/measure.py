"""Bounded closed-loop load, its samples, and the report table.

Every load loop is bounded twice, by a request count and by a wall-clock duration, and only ever talks to
127.0.0.1. A sample also records the CPU time the target's processes and the database's processes spent
while it ran, so the report can say where each request's time goes (service vs PostgreSQL).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .cluster import descendants, process_cpu_seconds


@dataclass
class Sample:
    """One bounded load run: requests completed, failures, wall time, per-request latencies (seconds) and the
    CPU seconds the target and the database used meanwhile."""

    done: int
    failed: int
    elapsed: float
    latencies: list[float]
    target_cpu: float = 0.0
    database_cpu: float = 0.0

    @property
    def throughput(self) -> float:
        return self.done / self.elapsed if self.elapsed else 0.0


@dataclass
class Result:
    scenario: str
    target: str
    samples: list[Sample] = field(default_factory=list)
    statements: str = "-"

    @property
    def throughput(self) -> float:
        return statistics.median(sample.throughput for sample in self.samples)

    def percentile(self, fraction: float) -> float:
        latencies = sorted(latency for sample in self.samples for latency in sample.latencies)
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(fraction * len(latencies)))] * 1000

    def cpu_ms(self, which: str) -> float:
        done = sum(sample.done for sample in self.samples)
        spent = sum(getattr(sample, f"{which}_cpu") for sample in self.samples)
        return spent / done * 1000 if done else float("nan")

    @property
    def failed(self) -> int:
        return sum(sample.failed for sample in self.samples)


@dataclass
class Processes:
    """The process trees whose CPU a sample charges: the target server's and the database's."""

    target: int | None = None
    database: int | None = None

    def cpu(self) -> tuple[float, float]:
        target = process_cpu_seconds(descendants(self.target)) if self.target else 0.0
        database = process_cpu_seconds(descendants(self.database)) if self.database else 0.0
        return target, database


async def load_with(
    send: Callable[[int], Awaitable[bool]],
    *,
    concurrency: int,
    duration: float,
    max_requests: int,
    processes: Processes | None = None,
) -> Sample:
    """Closed-loop load: ``concurrency`` workers call ``send(n)`` (n counts requests, so each can vary its
    variables) back to back until either bound is reached; ``send`` says whether its request succeeded."""
    latencies: list[float] = []
    failed = 0
    issued = 0
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal failed, issued
        while issued < max_requests and time.perf_counter() < deadline:
            number = issued
            issued += 1
            started = time.perf_counter()
            ok = await send(number)
            elapsed = time.perf_counter() - started
            if ok:
                latencies.append(elapsed)
            else:
                failed += 1

    processes = processes or Processes()
    cpu_before = processes.cpu()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu_after = processes.cpu()
    return Sample(done=len(latencies), failed=failed, elapsed=elapsed, latencies=latencies,
                  target_cpu=cpu_after[0] - cpu_before[0], database_cpu=cpu_after[1] - cpu_before[1])  # fmt: skip


def table(results: list[Result]) -> str:
    """A Markdown table: one row per scenario and target, ratios on the other targets' rows."""
    by_key = {(r.scenario, r.target): r for r in results}
    lines = ["| scenario | target | req/s (median) | p50 ms | p99 ms | SQL/request | CPU ms/req server | "
             "CPU ms/req PostgreSQL | service ÷ target |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for result in results:
        service = by_key.get((result.scenario, "service"))
        ratio = ""
        if service is not None and result.target != "service" and result.throughput:
            ratio = f"{service.throughput / result.throughput:.2f}x"
        failed = f" ({result.failed} failed)" if result.failed else ""
        latency = f"{result.percentile(0.5):.1f} | {result.percentile(0.99):.1f}"
        cpu = f"{result.cpu_ms('target'):.2f} | {result.cpu_ms('database'):.2f}"
        lines.append(f"| {result.scenario} | {result.target} | {result.throughput:,.1f}{failed} | {latency} | "
                     f"{result.statements} | {cpu} | {ratio} |")  # fmt: skip
    return "\n".join(lines)
