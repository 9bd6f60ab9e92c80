"""Time each statistics SQL step on the episodes of an earlier run.

Usage: ``python benchmarks/profile_statistics.py OUTPUT_DIR`` where OUTPUT_DIR holds the
``parquet/`` folder of an ``icare run``. Prints wall and CPU seconds per SQL file, slowest first, so
work on speed goes where the time is. CPU time is the whole process's (DuckDB's threads included): on a
busy machine it is steadier than wall time.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq

from icare.classification import load_classification
from icare.sources.spec import load_source_spec
from icare.statistics.compute import compute_statistics
from icare.statistics.periods import reporting_periods
from icare.statistics.settings import load_statistics_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", type=Path)
    args = parser.parse_args()
    parquet = args.output_dir / "parquet"
    episodes = pq.read_table(parquet / "episodes.parquet")
    inputs = pq.read_table(parquet / "inputs.parquet").to_pandas()
    sources = sorted(set(inputs["source"]))
    specs = {name: load_source_spec(name) for name in sources}
    classification = load_classification()
    timings: dict[str, tuple[float, float]] = {}

    def timed(name: str, run: Callable[[], object]) -> object:
        started, cpu_started = time.perf_counter(), time.process_time()
        result = run()
        timings[name] = (time.perf_counter() - started, time.process_time() - cpu_started)
        return result

    started, cpu_started = time.perf_counter(), time.process_time()
    compute_statistics(
        episodes,
        reporting_periods(inputs, specs),
        classification,
        load_statistics_settings(),
        {name: spec.care_spell_gap_days for name, spec in specs.items()},
        on_statement=timed,
    )
    total, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    print(f"{episodes.num_rows:,} episodes; statistics in {total:.2f} s wall, {cpu:.2f} s CPU")
    print("    wall     CPU")
    for name, (seconds, cpu_seconds) in sorted(timings.items(), key=lambda item: -item[1][0]):
        print(f"  {seconds:6.2f}  {cpu_seconds:6.2f}  {name}")


if __name__ == "__main__":
    main()
