"""End-to-end benchmark of ``icare run`` on synthetic SSDA903 returns (see benchmarks/README.md).

    python benchmarks/run_benchmark.py                          # 1,000,000 episode rows, CSV
    python benchmarks/run_benchmark.py --format xlsx
    python benchmarks/run_benchmark.py --episodes 5000000 --repeat 3
    python benchmarks/run_benchmark.py --generator-only         # time the data generator itself

The input is generated once into ``benchmarks/data/<format>-<N>/`` and reused while the generator's
source and arguments are unchanged. Each timed run starts ``icare run`` as a separate process and
measures the wall time from its start to its exit and the peak resident memory of that process (from
``os.wait4``). The script prints a table, appends one JSON line to ``benchmarks/results/results.jsonl``,
and exits non-zero only when a run crashes, never because a target is missed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = HERE / "data"
RESULTS = HERE / "results" / "results.jsonl"
GENERATOR = REPO / "icare" / "sources" / "ssda903" / "synthetic.py"

FIRST_YEAR, LAST_YEAR, AREAS, SEED = 2022, 2025, ("201", "202"), 903
GB = 1_000_000_000  # targets are in decimal gigabytes
# A fixed, public key: the input is synthetic. ``icare run`` refuses keys shorter than 16 bytes, so the
# plain "benchmark-key" is lengthened.
PSEUDONYM_KEY = "benchmark-key-synthetic-data-only"

# (format, episode rows) -> (wall seconds, peak memory in bytes or None)
TARGETS: dict[tuple[str, int], tuple[float, int | None]] = {
    ("csv", 1_000_000): (8.0, int(1.5 * GB)),
    ("xlsx", 1_000_000): (15.0, None),
    ("csv", 5_000_000): (35.0, 4 * GB),
}


def generator_fingerprint() -> str:
    return hashlib.sha256(GENERATOR.read_bytes()).hexdigest()[:16]


def measure(command: list[str], env: dict[str, str], log: Path) -> dict:
    """Run ``command``; wall time from start to exit, peak RSS of the process, exit code."""
    with log.open("wb") as out:
        start = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)  # already reaped by wait4
    return {
        "wall_s": round(wall, 3),
        # MiB despite the key's name (kept for the earlier lines of results.jsonl); ru_maxrss is in KiB.
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "exit_code": process.returncode,
    }


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def ensure_data(fmt: str, episodes: int, regenerate: bool) -> tuple[Path, dict]:
    """The cached input folder and its metadata (generated when missing or stale)."""
    from icare.sources.ssda903.synthetic import children_for_episode_rows, generate_returns

    folder = DATA / f"{fmt}-{episodes}"
    meta_path = DATA / f"{fmt}-{episodes}.json"  # beside, not inside, the input folder
    children = children_for_episode_rows(episodes, FIRST_YEAR, LAST_YEAR)
    wanted = {
        "format": fmt,
        "episodes_target": episodes,
        "children": children,
        "first_year": FIRST_YEAR,
        "last_year": LAST_YEAR,
        "areas": list(AREAS),
        "seed": SEED,
        "generator": generator_fingerprint(),
    }
    if not regenerate and meta_path.exists() and folder.is_dir():
        meta = json.loads(meta_path.read_text())
        if {k: meta.get(k) for k in wanted} == wanted:
            print(f"using cached input {folder.relative_to(REPO)} ({meta['episode_rows']:,} episode rows)")
            return folder, meta | {"generation_s": None}
    shutil.rmtree(folder, ignore_errors=True)
    print(
        f"generating {fmt} input for about {episodes:,} episode rows ({children:,} children) ...", flush=True
    )
    start = time.perf_counter()
    result = generate_returns(
        folder, children=children, first_year=FIRST_YEAR, last_year=LAST_YEAR, areas=AREAS, seed=SEED, fmt=fmt
    )
    seconds = time.perf_counter() - start
    meta = wanted | {
        "episode_rows": result.episode_rows,
        "header_rows": result.header_rows,
        "uasc_rows": result.uasc_rows,
        "generation_s": round(seconds, 2),
    }
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    print(f"generated {result.episode_rows:,} episode rows in {seconds:.1f} s")
    return folder, meta


def icare_command() -> list[str]:
    script = Path(sys.executable).with_name("icare")
    if script.exists():
        return [str(script)]
    found = shutil.which("icare")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from icare.cli import main; sys.exit(main())"]


def git_commit() -> tuple[str | None, bool | None]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True
            ).stdout.strip()
        )
        return commit, dirty
    except (OSError, subprocess.CalledProcessError):
        return None, None


def verdict(value: float, limit: float | None) -> str:
    if limit is None:
        return "-"
    return "met" if value <= limit else "MISSED"


def print_table(title: str, rows: int, runs: list[dict], target: tuple[float, int | None] | None) -> None:
    wall_t, mem_t = target if target else (None, None)
    print()
    print(title)
    print(f"{'run':>4} {'wall s':>9} {'peak GB':>9} {'rows/s':>12} {'exit':>5}  wall target   memory target")
    for i, run in enumerate(runs, start=1):
        rate = rows / run["wall_s"] if run["wall_s"] else 0
        wall_txt = f"<= {wall_t:g} s {verdict(run['wall_s'], wall_t)}" if wall_t else "none"
        mem_txt = (
            f"<= {mem_t / GB:g} GB {verdict(run['peak_rss_mb'] * 1024 * 1024, mem_t)}" if mem_t else "none"
        )
        peak_gb = run["peak_rss_mb"] * 1024 * 1024 / GB
        print(
            f"{i:>4} {run['wall_s']:>9.2f} {peak_gb:>9.2f} {rate:>12,.0f} {run['exit_code']:>5}  "
            f"{wall_txt:<13} {mem_txt}"
        )
    if target is None and "icare run" in title:
        print("(no target is set for this size and format; targets: csv 1M, xlsx 1M, csv 5M rows)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--episodes", type=int, default=1_000_000, help="episode rows to generate (default 1e6)"
    )
    parser.add_argument("--format", choices=("csv", "xlsx"), default="csv")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs (default 1)")
    parser.add_argument(
        "--keep-data",
        action="store_true",
        help="keep each run's pipeline output (under benchmarks/data/runs/) instead of deleting it; "
        "the generated input is always cached",
    )
    parser.add_argument("--regenerate", action="store_true", help="regenerate the cached input")
    parser.add_argument(
        "--generator-only",
        action="store_true",
        help="time the data generator (as a subprocess, into a temporary folder) instead of icare run",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    env = dict(os.environ, ICARE_PSEUDONYM_KEY=PSEUDONYM_KEY, PYTHONUNBUFFERED="1")
    runs: list[dict] = []
    crashed = False
    record: dict = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "generator" if args.generator_only else "pipeline",
        "format": args.format,
        "episodes_target": args.episodes,
    }

    if args.generator_only:
        from icare.sources.ssda903.synthetic import children_for_episode_rows

        children = children_for_episode_rows(args.episodes, FIRST_YEAR, LAST_YEAR)
        rows = None
        for i in range(args.repeat):
            out = Path(tempfile.mkdtemp(prefix="icare-gen-"))
            log = out.with_suffix(".log")
            command = [
                sys.executable, "-m", "icare.sources.ssda903.synthetic", str(out / "data"),
                "--children", str(children), "--first-year", str(FIRST_YEAR), "--last-year", str(LAST_YEAR),
                "--areas", ",".join(AREAS), "--format", args.format, "--seed", str(SEED),
            ]  # fmt: skip
            run = measure(command, env, log)
            runs.append(run)
            if run["exit_code"] != 0:
                crashed = True
                print(
                    f"generator run {i + 1} failed (exit {run['exit_code']}):\n{tail(log)}", file=sys.stderr
                )
            else:
                rows = int(log.read_text().split("wrote ", 1)[1].split(" ", 1)[0])
            shutil.rmtree(out, ignore_errors=True)
            log.unlink(missing_ok=True)
        record |= {"children": children, "episode_rows": rows, "runs": runs}
        target = None
        title = f"generator, {args.format}, {rows or 0:,} episode rows ({children:,} children)"
    else:
        try:
            data, meta = ensure_data(args.format, args.episodes, args.regenerate)
        except Exception as exc:  # a crash of the generator is a crash of the benchmark
            print(f"could not generate the input: {exc!r}", file=sys.stderr)
            return 1
        rows = meta["episode_rows"]
        record |= {
            "children": meta["children"],
            "episode_rows": rows,
            "header_rows": meta["header_rows"],
            "data_dir": str(data.relative_to(REPO)),
            "generation_s": meta.get("generation_s"),
        }
        command = icare_command()
        for i in range(args.repeat):
            if args.keep_data:
                out = DATA / "runs" / f"{args.format}-{args.episodes}-{int(time.time())}-{i + 1}"
                out.mkdir(parents=True, exist_ok=True)
            else:
                out = Path(tempfile.mkdtemp(prefix="icare-bench-"))
            log = Path(str(out) + ".log")
            full = [*command, "run", "--source", f"ssda903={data}", "--output", str(out)]
            print(f"run {i + 1}/{args.repeat}: {' '.join(full)}", flush=True)
            run = measure(full, env, log)
            runs.append(run)
            if run["exit_code"] != 0:
                crashed = True
                print(
                    f"icare run failed (exit {run['exit_code']}); last lines of {log}:\n{tail(log)}",
                    file=sys.stderr,
                )
            if args.keep_data:
                print(f"kept output {out} and log {log}")
            else:
                shutil.rmtree(out, ignore_errors=True)
                if run["exit_code"] == 0:
                    log.unlink(missing_ok=True)
        record["runs"] = runs
        record["command"] = "icare run --source ssda903=<data> --output <tmp>"
        target = TARGETS.get((args.format, args.episodes))
        title = f"icare run, {args.format}, {rows:,} episode rows ({meta['children']:,} children)"

    ok_runs = [r for r in runs if r["exit_code"] == 0]
    if ok_runs and rows:
        walls = [r["wall_s"] for r in ok_runs]
        record |= {
            "best_wall_s": min(walls),
            "median_wall_s": round(statistics.median(walls), 3),
            "max_peak_rss_mb": max(r["peak_rss_mb"] for r in ok_runs),
            "rows_per_s": round(rows / statistics.median(walls)),
        }
        if target:
            record["target"] = {"wall_s": target[0], "peak_bytes": target[1]}
            record["met"] = {
                "wall": record["median_wall_s"] <= target[0],
                "memory": None if target[1] is None else record["max_peak_rss_mb"] * 1024 * 1024 <= target[1],
            }
    commit, dirty = git_commit()
    record |= {
        "crashed": crashed,
        "commit": commit,
        "dirty": dirty,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    print_table(title, rows or 0, runs, target)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as f:
        f.write(json.dumps(record) + "\n")
    print(f"\nappended to {RESULTS.relative_to(REPO)}")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
