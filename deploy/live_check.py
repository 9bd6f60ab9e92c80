"""Live check of the automation: ``dg dev`` with its daemon, the landing sensor and publication.

The tests evaluate the sensor, the schedule and the automation conditions in-process; this script
runs the real thing on one machine, as docs/operations.md describes, and checks what the daemon did:

1. ``dg dev`` on 127.0.0.1 with a temporary ``DAGSTER_HOME`` (the project's dagster.yaml), landing
   folder and output folder; the landing sensor (every 15 s) and the automation sensor turned on;
2. two collection years land: one ingest run per year, then one publication run;
3. a new year lands, one earlier file changes and another is rewritten with the same content:
   ingest runs for the new and the changed year only, then one publication run;
4. a year's folder is removed: its partition is deleted and ``icare_publish`` runs;
5. the published Parquet tables equal those of ``icare run`` on the same landing folder
   (all but ``runs``).

Takes about three minutes; not part of CI. Run from the repository root:

    .venv/bin/python deploy/live_check.py [--port 3311] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sources" / "ssda903" / "sample"
LOCATION = {"repositoryName": "__repository__", "repositoryLocationName": "icare"}
SENSORS = ("icare_landing_sensor", "default_automation_condition_sensor")
RUNS_QUERY = """
{ runsOrError { ... on Runs { results { runId jobName status tags { key value } } } } }
"""
START_SENSOR = """
mutation Start($selector: SensorSelector!) {
  startSensor(sensorSelector: $selector) { ... on Sensor { sensorState { status } } }
}
"""
PARTITIONS_QUERY = '{ assetNodes(assetKeys: [{path: ["ssda903_returns"]}]) { partitionKeys } }'
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


class Dagster:
    """A ``dg dev`` process group and its GraphQL endpoint."""

    def __init__(self, port: int, environment: dict[str, str]) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(Path(environment["DAGSTER_HOME"]) / "dg-dev.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "dg"), "dev", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=environment,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stopping it stops its children
        )

    def query(self, text: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": text, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.load(response)
        if "errors" in answer:
            raise RuntimeError(f"GraphQL error: {answer['errors']}")
        return answer["data"]

    def wait_until_up(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.query(RUNS_QUERY)
                return
            except OSError:
                time.sleep(2)
        raise TimeoutError(f"dg dev did not answer on {self.url} within {timeout:.0f} s")

    def runs(self) -> list[dict]:
        results = self.query(RUNS_QUERY)["runsOrError"]["results"]
        return [{**r, "tags": {t["key"]: t["value"] for t in r["tags"]}} for r in results]

    def partitions(self) -> list[str]:
        return self.query(PARTITIONS_QUERY)["assetNodes"][0]["partitionKeys"]

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=60)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()


def wait_for_runs(dagster: Dagster, seen: set[str], expect_publish: bool, timeout: float = 240) -> list[dict]:
    """New runs once the landing runs and (if expected) the publication after them have finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = [r for r in dagster.runs() if r["runId"] not in seen]
        published = any(r["jobName"] != "ssda903_ingest" for r in new)
        if new and all(r["status"] in FINISHED for r in new) and (published or not expect_publish):
            time.sleep(20)  # one more sensor interval: nothing else may follow
            again = [r for r in dagster.runs() if r["runId"] not in seen]
            if len(again) == len(new) and all(r["status"] in FINISHED for r in again):
                return again
        time.sleep(5)
    raise TimeoutError(f"runs did not finish within {timeout:.0f} s")


def describe(run: dict) -> str:
    tags = run["tags"]
    trigger = tags.get("dagster/sensor_name", "")
    return f"{run['jobName']} {tags.get('dagster/partition', '-')} {run['status']} ({trigger})"


def check_stage(name: str, runs: list[dict], ingested: set[str], publish_job: str | None) -> list[str]:
    """Problems with a stage's runs: every run succeeded, the expected years only, one publication."""
    problems = [f"{name}: {describe(r)}" for r in runs if r["status"] != "SUCCESS"]
    years = sorted(r["tags"].get("dagster/partition") for r in runs if r["jobName"] == "ssda903_ingest")
    if years != sorted(ingested):
        problems.append(f"{name}: ingested {years}, expected {sorted(ingested)}")
    publications = [r for r in runs if r["jobName"] != "ssda903_ingest"]
    if len(publications) != 1 or (publish_job and publications[0]["jobName"] != publish_job):
        problems.append(f"{name}: publication runs {[describe(r) for r in publications]}")
    return problems


def compare_with_cli(landing: Path, outputs: Path, work: Path, environment: dict[str, str]) -> list[str]:
    cli = work / "cli"
    subprocess.run(
        [str(ROOT / ".venv" / "bin" / "icare"), "run", "--quiet", "--source", f"ssda903={landing}",
         "--output", str(cli)],
        env=environment, check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    problems = []
    names = sorted(p.name for p in (outputs / "parquet").glob("*.parquet"))
    if names != sorted(p.name for p in (cli / "parquet").glob("*.parquet")):
        problems.append("the Dagster and CLI outputs hold different tables")
    for name in names:
        if name != "runs.parquet" and not pq.read_table(outputs / "parquet" / name).equals(
            pq.read_table(cli / "parquet" / name)
        ):
            problems.append(f"{name}: Dagster and icare run differ")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=3311)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="icare-live-"))
    home, landing, outputs = work / "dagster_home", work / "landing" / "ssda903", work / "outputs"
    for folder in (home, landing, outputs):
        folder.mkdir(parents=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    environment = os.environ | {
        "DAGSTER_HOME": str(home),
        "ICARE_LANDING_DIR": str(landing.parent),
        "ICARE_OUTPUT_DIR": str(outputs),
        "ICARE_PSEUDONYM_KEY": "live-check-key-live-check-key",
        "ICARE_LANDING_INTERVAL_SECONDS": "15",
    }
    dagster = Dagster(options.port, environment)
    problems: list[str] = []
    try:
        dagster.wait_until_up()
        for sensor in SENSORS:
            dagster.query(START_SENSOR, {"selector": {**LOCATION, "sensorName": sensor}})
        seen: set[str] = set()

        def stage(name: str, ingested: set[str], publish_job: str | None) -> None:
            runs = wait_for_runs(dagster, seen, expect_publish=True)
            seen.update(r["runId"] for r in runs)
            print(f"{name}: " + "; ".join(describe(r) for r in reversed(runs)))
            problems.extend(check_stage(name, runs, ingested, publish_job))

        for year in ("2022", "2023"):
            shutil.copytree(SAMPLE / year, landing / year)
        stage("two years land", {"2022", "2023"}, None)

        shutil.copytree(SAMPLE / "2024", landing / "2024")
        changed = landing / "2022" / "202" / "uasc.csv"
        changed.write_text("".join(changed.read_text().splitlines(True)[:-1]))  # one row fewer
        same = landing / "2023" / "201" / "header.csv"
        same.write_bytes(same.read_bytes())  # rewritten, same content: must not re-run
        stage("new year, changed file, rewritten file", {"2022", "2024"}, None)

        shutil.rmtree(landing / "2024")
        stage("year removed", set(), "icare_publish")
        if dagster.partitions() != ["2022", "2023"]:
            problems.append(f"partitions after removal: {dagster.partitions()}")

        problems.extend(compare_with_cli(landing.parent / "ssda903", outputs, work, environment))
    finally:
        dagster.stop()
        if not options.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print("live check: " + ("failed" if problems else "every stage as expected; outputs equal icare run's"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
