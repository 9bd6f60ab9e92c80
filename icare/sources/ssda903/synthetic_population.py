"""A deterministic synthetic child population for the bundled sample's areas, so the sample run shows rates.

Nothing here is a real population estimate. Each area gets a level (children per single year of age
and sex) of the size that gives the sample's 60-70 children in care a rate near England's (around 70
per 10,000 children); boys are about 5% more than girls, as in real births; each year the level drifts
a little, and every cell gets a small random variation from a fixed seed, so the output is
byte-identical for the same arguments.

Command line: ``python -m icare.sources.ssda903.synthetic_population OUT_DIR`` (defaults: areas 201 and
202, years 2021 to 2025, seed 903) writes ``population.csv`` and its description ``population.yaml``.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from icare.statistics.settings import RATE_LAST_AGE

SOURCE = "ssda903"
# Children per single year of age and sex, before variation: about 10,000 and 9,000 aged 0-17.
AREA_LEVELS = {"201": 278, "202": 250}
MALE_SHARE = 1.05 / 2.05
YEARLY_DRIFT = -0.004
VARIATION = 0.04
DESCRIPTION = """\
# Description of the synthetic child population of the bundled sample (docs/statistics.md "Rates").
# Every figure is invented, made by the project's generator with its defaults:
#   python -m icare.sources.ssda903.synthetic_population sources/ssda903/sample_population
population_source: "icare synthetic population for the bundled SSDA903 sample (not real estimates)"
vintage: "icare-synthetic-{first}-{last}, seed {seed}"
licence: "Synthetic data made by icare; no restriction"
notes: >-
  Invented mid-year populations of areas {areas}, years {first} to {last},
  single years of age 0-17, sexes M and F.
data: population.csv
"""


def population_rows(
    areas: Sequence[str] = ("201", "202"), first_year: int = 2021, last_year: int = 2025, seed: int = 903
) -> list[dict[str, object]]:
    """One row per area, year, sex and single year of age 0-17, in that order."""
    rng = np.random.default_rng(seed)
    rows = []
    for area in areas:
        level = AREA_LEVELS.get(area, 250)
        for year in range(first_year, last_year + 1):
            drifted = level * (1 + YEARLY_DRIFT) ** (year - first_year)
            for sex, share in (("F", 1 - MALE_SHARE), ("M", MALE_SHARE)):
                for age in range(RATE_LAST_AGE + 1):
                    expected = drifted * 2 * share
                    value = round(expected * (1 + rng.uniform(-VARIATION, VARIATION)))
                    rows.append(
                        {
                            "source": SOURCE,
                            "area_code": area,
                            "year": year,
                            "sex": sex,
                            "age": age,
                            "population": value,
                        }
                    )
    return rows


def write_population(
    out: str | Path,
    areas: Sequence[str] = ("201", "202"),
    first_year: int = 2021,
    last_year: int = 2025,
    seed: int = 903,
) -> Path:
    """Write ``population.csv`` and ``population.yaml`` into ``out``; returns the description's path."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    rows = population_rows(areas, first_year, last_year, seed)
    with (folder / "population.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    description = folder / "population.yaml"
    description.write_text(
        DESCRIPTION.format(first=first_year, last=last_year, seed=seed, areas=" and ".join(areas)),
        encoding="utf-8",
    )
    return description


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for population.csv and population.yaml")
    parser.add_argument("--areas", default="201,202", help="comma-separated area codes")
    parser.add_argument("--first-year", type=int, default=2021)
    parser.add_argument("--last-year", type=int, default=2025)
    parser.add_argument("--seed", type=int, default=903)
    args = parser.parse_args(argv)
    path = write_population(args.out, args.areas.split(","), args.first_year, args.last_year, args.seed)
    print(f"wrote {path} and {path.with_name('population.csv')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
