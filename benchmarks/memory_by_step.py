"""Peak resident memory of each step of ``icare run``, and of each statistics statement.

Usage: ``python benchmarks/memory_by_step.py INPUT_DIR OUTPUT_DIR`` (an SSDA903 folder, such as
``benchmarks/data/csv-1000000``). Runs the pipeline in this process, as ``icare run`` does, while a
thread samples the resident set size every 5 ms and charges it to the step under way (the steps are
the progress lines of ``icare run``; statistics are split by SQL file and read-out). It also prints
the size of the tables held when the statistics start and when they end, so work on memory goes
where the peak is. The run's overall peak is ``run_benchmark.py``'s figure; this tool says which
step reaches it. Sampling costs some speed: do not time runs with it.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd
import pyarrow as pa

import icare.pipeline as pipeline

# The benchmark's fixed public key (the data is synthetic), as run_benchmark.py sets it.
BENCHMARK_KEY = "benchmark-key-synthetic-data-only"
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


class StepMemory:
    """Peak resident set size per step label, sampled in a daemon thread."""

    def __init__(self) -> None:
        self.label = "imports and settings"
        self.peaks: dict[str, float] = {}
        threading.Thread(target=self._sample, daemon=True).start()

    @staticmethod
    def resident_mb() -> float:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * PAGE_BYTES / 1e6

    def _sample(self) -> None:
        while True:
            label, now = self.label, self.resident_mb()
            self.peaks[label] = max(self.peaks.get(label, 0.0), now)
            time.sleep(0.005)

    def progress(self, message: str) -> None:
        if message.endswith(" ..."):
            self.label = message.removesuffix(" ...")

    def statement(self, name: str, run: Callable[[], object]) -> object:
        self.label = f"  statistics: {name}"
        return run()


def table_mb(table: object) -> float:
    if isinstance(table, pa.Table):
        return table.nbytes / 1e6
    if isinstance(table, pd.DataFrame):
        return float(table.memory_usage(deep=True).sum()) / 1e6
    return 0.0


def sizes(tables: Mapping[str, object]) -> str:
    held = {name: table_mb(table) for name, table in tables.items()}
    return ", ".join(
        f"{name} {mb:,.0f} MB" for name, mb in sorted(held.items(), key=lambda i: -i[1]) if mb >= 1
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input_dir", type=Path)
    parser.add_argument("output_dir", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("ICARE_PSEUDONYM_KEY", BENCHMARK_KEY)
    memory = StepMemory()
    compute, statistics_tables = pipeline.compute_statistics, pipeline.statistics_tables

    def measured_compute(*positional: object, **named: object) -> object:
        return compute(*positional, on_statement=memory.statement, **named)

    def measured_statistics(tables: Mapping[str, object], *positional: object, **named: object) -> object:
        print(f"statistics start: resident {memory.resident_mb():,.0f} MB; held: {sizes(tables)}")
        result = statistics_tables(tables, *positional, **named)
        print(f"statistics end: resident {memory.resident_mb():,.0f} MB; made: {sizes(result)}")
        memory.label = "statistics (after the last statement)"
        return result

    pipeline.compute_statistics = measured_compute
    pipeline.statistics_tables = measured_statistics
    pipeline.run(
        pipeline.RunOptions(
            sources={"ssda903": args.input_dir}, output_dir=args.output_dir, progress=memory.progress
        )
    )
    memory.label = "end"
    time.sleep(0.05)
    print(f"{'step':55s} {'peak MB':>9s}")
    for label, peak in memory.peaks.items():
        print(f"{label:55s} {peak:9,.0f}")
    print(f"highest: {max(memory.peaks.values()):,.0f} MB")


if __name__ == "__main__":
    main()
