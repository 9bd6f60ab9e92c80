"""TransMonEE SDMX-CSV export (release/sdmx/, docs/sdmx.md): crafted release tables in the shape the
release contract gives them (national margin rows, icare_level, rates), figures computed by hand."""

from __future__ import annotations

import csv
import shutil
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
from pysdmx.io import read_sdmx

from icare.classification import load_classification
from icare.pipeline import RunOptions, bundled_samples, run
from icare.release.sdmx import write_transmonee
from icare.release.sdmx_config import SdmxConfigError, load_transmonee
from icare.resources import config_dir

CLASSIFICATION = load_classification()
VERSION = CLASSIFICATION.version_id
LEVEL2_PARENT = {"AC.F1": "AC.F", "AC.F2": "AC.F", "AC.F3": "AC.F"}


def _icare(level: str, code: str) -> dict:
    """The ICare columns of a row at ``icare_level`` ``level`` (release contract point 2)."""
    if level == "total":
        return {
            "icare_level": "total",
            "icare_code": "total",
            "icare_level1": "total",
            "icare_level2": "total",
        }
    if level == "level2":
        return {"icare_level": "level2", "icare_code": code, "icare_level1": "AC.F", "icare_level2": code}
    return {
        "icare_level": "code",
        "icare_code": code,
        "icare_level1": "AC.F",
        "icare_level2": CLASSIFICATION.roll_up(code, 2),
    }


def _count(
    children: int | None, status: str, population: int | None = None, reason: str | None = None
) -> dict:
    """A count with its status and, when a population is given, its rate (null when withheld)."""
    rate = None
    if population and children is not None and status == "F":
        rate = 100000 * children / population
    return {
        "children": children,
        "children_status": status,
        "population": population,
        "rate_per_100000": rate,
        "rate_status": status,
        "rate_missing_reason": reason,
    }


def _table(rows: list[dict], common: dict) -> pa.Table:
    full = [common | row for row in rows]
    columns = {
        name: [row.get(name) for row in full] for name in dict.fromkeys(k for row in full for k in row)
    }
    return pa.table(columns)


STOCK_COMMON = {
    "source": "ssda903",
    "area_code": "total",
    "reference_date": date(2024, 3, 31),
    "sex": "total",
    "age_band": "under 18",
    "provider_sector": "total",
    "is_total": True,
    "classification_version": VERSION,
}
FLOW_COMMON = {
    "source": "ssda903",
    "area_code": "total",
    "period_start": date(2023, 4, 1),
    "period_end": date(2024, 3, 31),
    "sex": "total",
    "age_band": "under 18",
    "is_total": True,
    "classification_version": VERSION,
}
MILLION, HALF = 1_000_000, 500_000


def crafted_release() -> dict[str, pa.Table]:
    stock = [
        _icare("level2", "AC.F1") | _count(600, "F", MILLION),
        _icare("level2", "AC.F2") | _count(150, "F", MILLION),
        _icare("level2", "AC.F3") | _count(40, "F", MILLION),
        _icare("level2", "AC.F1") | _count(300, "F", HALF) | {"sex": "F"},
        _icare("level2", "AC.F2") | _count(70, "F", HALF) | {"sex": "F"},
        # a published count whose rate the release cannot give (no population for M)
        _icare("level2", "AC.F2") | _count(80, "F", None, "no_population") | {"sex": "M"},
        _icare("level2", "AC.F1") | _count(200, "F", None, "no_population") | {"sex": "M"},
        _icare("level2", "AC.F2") | _count(10, "F", 100_000) | {"age_band": "0-2"},
        _icare("level2", "AC.F1") | _count(30, "F", 100_000) | {"age_band": "0-2"},
        _icare("level2", "AC.F2") | _count(60, "F", 300_000) | {"age_band": "10-15"},  # no CL_AGE code
        _icare("code", "AC.F12") | _count(400, "F", MILLION),
        _icare("code", "AC.F11") | _count(120, "F", MILLION),
        _icare("code", "AC.F131") | _count(None, "A", MILLION),
        _icare("code", "AC.F132") | _count(50, "D", MILLION) | {"children": None},
        _icare("code", "AC.F139") | _count(30, "F", MILLION),
        _icare("level2", "AC.F2") | _count(999, "F", MILLION) | {"area_code": "201"},  # not national
        _icare("level2", "AC.F2") | _count(140, "F") | {"provider_sector": "private"},  # not the total
    ]
    exits = [
        _icare("level2", "AC.F2") | _count(30, "F") | {"exit_destination": "reunification"},
        _icare("level2", "AC.F2") | _count(12, "F") | {"exit_destination": "relatives_kin"},
        _icare("level2", "AC.F2") | _count(None, "D") | {"exit_destination": "guardianship_order"},
        _icare("level2", "AC.F2") | _count(4, "F") | {"exit_destination": "independent_living_supported"},
        _icare("level2", "AC.F2") | _count(2, "F") | {"exit_destination": "independent_living_unsupported"},
        _icare("level2", "AC.F1") | _count(20, "F") | {"exit_destination": "relatives_kin"},
        _icare("level2", "AC.F1") | _count(3, "F") | {"exit_destination": "adult_services"},
        _icare("level2", "AC.F1") | _count(9, "F") | {"exit_destination": "transfer_agency"},  # not an exit
        _icare("total", "") | _count(25, "F", MILLION) | {"exit_destination": "adoption"},
        _icare("total", "") | _count(500, "F", MILLION) | {"exit_destination": "total"},
    ]
    entries = [_icare("level2", "AC.F2") | _count(40, "F", MILLION)]
    move = {"transition": "move", "sex": "total", "age_band": "under 18"}

    def transition(from_code, to_code, count):
        return move | {
            "from_code": from_code,
            "from_level1": "AC.F",
            "from_level2": CLASSIFICATION.roll_up(from_code, 2),
            "to_code": to_code,
            "to_level1": "AC.F",
            "to_level2": CLASSIFICATION.roll_up(to_code, 2),
            "transitions": count,
            "transitions_status": "F",
        }

    transitions = [
        transition("AC.F21", "AC.F12", 7),
        transition("AC.F29", "AC.F11", 3),
        transition("AC.F12", "AC.F11", 4),
        move
        | {f"{side}_{part}": "total" for side in ("from", "to") for part in ("code", "level1", "level2")}
        | {"transitions": 100, "transitions_status": "F"},
    ]
    flow = {k: v for k, v in FLOW_COMMON.items()}
    return {
        "stock": _table(stock, STOCK_COMMON),
        "exits": _table(exits, flow),
        "entries": _table(entries, flow),
        "transitions": _table(transitions, flow),
    }


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[list[dict], dict[str, dict]]:
    folder = tmp_path_factory.mktemp("release")
    path = write_transmonee(crafted_release(), CLASSIFICATION, folder)
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    with (folder / "sdmx" / "supplied.csv").open(encoding="utf-8", newline="") as handle:
        supplied = {row["indicator"] or f"TM {row['tm']}": row for row in csv.DictReader(handle)}
    return rows, supplied


def _obs(rows: list[dict], indicator: str, sex: str = "_T", age: str = "_T") -> dict:
    found = [r for r in rows if r["INDICATOR"] == indicator and r["SEX"] == sex and r["AGE"] == age]
    assert len(found) == 1, (indicator, sex, age, found)
    return found[0]


def test_columns_follow_the_dataflow(written, tmp_path):
    rows, _ = written
    config = load_transmonee()
    assert list(rows[0]) == [
        "DATAFLOW",
        "REF_AREA", "INDICATOR", "SEX", "AGE", "RESIDENCE", "WEALTH_QUINTILE",
        "TIME_PERIOD", "OBS_VALUE",
        "COVERAGE_TIME", "UNIT_MEASURE", "OBS_FOOTNOTE", "FREQ", "DATA_SOURCE", "UNIT_MULTIPLIER",
        "OBS_STATUS",
    ]  # fmt: skip
    assert {r["DATAFLOW"] for r in rows} == {"ECARO:TRANSMONEE(1.0)"}
    indicators = {row.indicator for row in config.indicators if row.indicator}
    for row in rows:
        assert row["INDICATOR"] in indicators
        for component in ("REF_AREA", "SEX", "AGE", "RESIDENCE", "WEALTH_QUINTILE", "UNIT_MEASURE", "FREQ",
                          "UNIT_MULTIPLIER", "OBS_STATUS"):  # fmt: skip
            assert row[component] in config.structure.codes_of(component), (component, row)


def test_pysdmx_reads_the_file_back(tmp_path):
    path = write_transmonee(crafted_release(), CLASSIFICATION, tmp_path)
    message = read_sdmx(path)
    (dataset,) = message.data
    assert dataset.short_urn == "Dataflow=ECARO:TRANSMONEE(1.0)"
    assert len(dataset.data) == len(path.read_text(encoding="utf-8").splitlines()) - 1


def test_stock_counts_and_rates(written):
    rows, _ = written
    residential = _obs(rows, "PT_CHLD_INRESIDENTIAL")
    assert residential["OBS_VALUE"] == "150"  # the area 201 and private-sector rows are not national totals
    assert (residential["REF_AREA"], residential["TIME_PERIOD"], residential["COVERAGE_TIME"]) == (
        "GBR",
        "2024",
        "2024-03-31",
    )
    assert (residential["UNIT_MEASURE"], residential["OBS_STATUS"]) == ("NUMBER", "A")
    assert residential["OBS_FOOTNOTE"].startswith("England only")
    assert _obs(rows, "PT_CHLD_INRESIDENTIAL", sex="F")["OBS_VALUE"] == "70"
    assert _obs(rows, "PT_CHLD_INRESIDENTIAL", sex="M")["OBS_VALUE"] == "80"
    assert _obs(rows, "PT_CHLD_INRESIDENTIAL", age="Y0T2")["OBS_VALUE"] == "10"
    assert not [r for r in rows if r["AGE"] not in ("_T", "Y0T2")]  # 10-15 has no CL_AGE code
    assert _obs(rows, "PT_CHLD_INRESIDENTIAL_RATE_B")["OBS_VALUE"] == "15.0"  # 150 / 1,000,000
    assert _obs(rows, "PT_CHLD_INRESIDENTIAL_RATE_B", sex="F")["UNIT_MEASURE"] == "RATE_100000"
    assert _obs(rows, "PT_CHLD_CARED_BY_FOSTER")["OBS_VALUE"] == "400"


def test_a_rate_the_release_cannot_give_is_left_out_and_said_why(written):
    rows, supplied = written
    assert not [r for r in rows if r["INDICATOR"] == "PT_CHLD_INRESIDENTIAL_RATE_B" and r["SEX"] == "M"]
    assert "no_population" in supplied["PT_CHLD_INRESIDENTIAL_RATE_B"]["reason"]


def test_sums_of_categories(written):
    rows, _ = written
    # formal care = AC.F1 + AC.F2 (AC.F3 not included): (600 + 150) / 1,000,000; (300 + 70) / 500,000
    assert _obs(rows, "PT_CHLD_INFORMALCARE_RATE")["OBS_VALUE"] == "75.0"
    assert _obs(rows, "PT_CHLD_INFORMALCARE_RATE", sex="F")["OBS_VALUE"] == "74.0"
    assert _obs(rows, "PT_CHLD_INRESIDENTIAL_PROP")["OBS_VALUE"] == "20.0"  # 150 / 750
    assert _obs(rows, "PT_CHLD_INRESIDENTIAL_PROP", sex="F")["OBS_VALUE"] == "18.9"  # 70 / 370
    assert _obs(rows, "PT_CHLD_INRESIDENTIAL_PROP", sex="M")["OBS_VALUE"] == "28.6"  # 80 / 280
    assert _obs(rows, "PT_CHLD_INRESIDENTIAL_PROP", age="Y0T2")["OBS_VALUE"] == "25.0"  # 10 / 40
    assert _obs(rows, "PT_CHLD_INFORMALCARE_RATE", age="Y0T2")["OBS_VALUE"] == "40.0"  # 40 / 100,000
    assert _obs(rows, "PT_CHLD_ALLFAMILY_PROP")["OBS_VALUE"] == "80.0"
    assert _obs(rows, "PT_CHLD_INFOSTER_PROP")["OBS_VALUE"] == "66.7"  # 400 / 600


def test_a_withheld_part_withholds_the_sum(written):
    rows, supplied = written
    # other family-based care = AC.F131 (withheld, A) + AC.F132 (withheld, D) + AC.F139 (30)
    other = _obs(rows, "PT_CHLD_INOTHER_FAMILY")
    assert other["OBS_VALUE"] == ""
    assert other["OBS_STATUS"] == "Q"
    assert "CONF_STATUS A" in other["OBS_FOOTNOTE"]
    share = _obs(rows, "PT_CHLD_INOTHER_FAMILY_PROP")
    assert (share["OBS_VALUE"], share["OBS_STATUS"]) == ("", "Q")
    assert supplied["PT_CHLD_INOTHER_FAMILY"]["withheld"] == "1"
    # no number anywhere for a value the release withheld
    assert all(r["OBS_VALUE"] == "" for r in rows if r["OBS_STATUS"] == "Q")
    assert all(r["OBS_VALUE"] != "" for r in rows if r["OBS_STATUS"] == "A")


def test_exits_by_destination(written):
    rows, _ = written
    reunion = _obs(rows, "PT_CHLD_LEFT_RESIDENTIAL_REUNION")
    assert (reunion["OBS_VALUE"], reunion["TIME_PERIOD"], reunion["COVERAGE_TIME"]) == (
        "30",
        "2024",
        "2023-04-01/2024-03-31",
    )
    assert _obs(rows, "PT_CHLD_LEFT_RESIDENTIAL_INDEP")["OBS_VALUE"] == "6"  # E5 + E6 under 18
    # other = relatives_kin 12 + guardianship_order withheld (D): withheld
    other = _obs(rows, "PT_CHLD_LEFT_RESIDENTIAL_OTHER")
    assert (other["OBS_VALUE"], other["OBS_STATUS"]) == ("", "Q")
    assert "CONF_STATUS D" in other["OBS_FOOTNOTE"]
    # family-based: relatives_kin 20 + adult_services 3; the transfer to another authority is not an exit
    assert _obs(rows, "PT_CHLD_LEFT_ALLFAMILY_OTHER")["OBS_VALUE"] == "23"
    assert _obs(rows, "PT_CHLD_ADOPTION")["OBS_VALUE"] == "25"
    assert _obs(rows, "PT_CHLD_ADOPTION_RATE")["OBS_VALUE"] == "2.5"


def test_moves_between_care_types_from_transitions(written):
    rows, _ = written
    assert _obs(rows, "PT_CHLD_LEFT_RESIDENTIAL_FAMILY")["OBS_VALUE"] == "10"  # F21 -> F12 7, F29 -> F11 3
    assert _obs(rows, "PT_CHLD_LEFTFOSTER_FAMILY")["OBS_VALUE"] == "4"
    assert _obs(rows, "PT_CHLD_NO_PARENTAL_CARE_INRESIDENTIAL")["OBS_VALUE"] == "40"
    assert _obs(rows, "PT_CHLD_ENTER_RESIDENTIAL_RATE")["OBS_VALUE"] == "4.0"


def test_supplied_lists_every_indicator_with_a_reason(written):
    _, supplied = written
    config = load_transmonee()
    assert len(supplied) == len(config.indicators)
    assert supplied["PT_CHLD_INRESIDENTIAL"]["status"] == "supplied"
    disability = supplied["PT_CHLD_DISAB_INRESIDENTIAL_PROP"]
    assert disability["status"] == "cannot_supply" and "disability" in disability["reason"]
    assert supplied["PT_YOUNG_INRESIDENTIAL"]["status"] == "cannot_supply"
    # mapped, but the crafted release has no kinship entries
    assert supplied["PT_CHLD_ENTEREDKINSHIP"]["status"] == "not_in_release"
    assert supplied["PT_CHLD_ENTEREDKINSHIP"]["reason"]
    assert all(row["reason"] for row in supplied.values() if row["status"] != "supplied")


# -- configuration errors name the file and key ---------------------------------------------------


@pytest.fixture
def config_copy(tmp_path) -> Path:
    folder = tmp_path / "sdmx"
    shutil.copytree(config_dir() / "sdmx", folder)
    return folder


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_a_unit_outside_the_code_list_names_file_and_indicator(config_copy):
    mapping = config_copy / "transmonee_mapping.csv"
    _edit(mapping, "PT_CHLD_INRESIDENTIAL,,Children in formal residential care,stock,count,NUMBER",
          "PT_CHLD_INRESIDENTIAL,,Children in formal residential care,stock,count,PERSONS")  # fmt: skip
    with pytest.raises(
        SdmxConfigError, match=r"transmonee_mapping\.csv: PT_CHLD_INRESIDENTIAL: unit 'PERSONS'"
    ):
        load_transmonee(config_copy)


def test_a_filter_column_outside_the_table_names_the_line(config_copy):
    mapping = config_copy / "transmonee_mapping.csv"
    _edit(mapping, "stock,icare_level=level2;icare_code=AC.F2,,,yes,", "stock,icare_band=level2,,,yes,")
    with pytest.raises(
        SdmxConfigError, match=r"transmonee_mapping\.csv: line 3 \(PT_CHLD_INRESIDENTIAL\).*icare_band"
    ):
        load_transmonee(config_copy)


def test_a_sex_code_outside_the_structure_names_the_key(config_copy):
    _edit(config_copy / "transmonee.yaml", "total: _T", "total: T")
    with pytest.raises(SdmxConfigError, match=r"transmonee\.yaml: sex\.total: 'T' is not a code of SEX"):
        load_transmonee(config_copy)


def test_every_exit_destination_of_the_classification_is_mapped(config_copy, tmp_path):
    exits = config_copy / "transmonee_exit_destinations.csv"
    text = exits.read_text(encoding="utf-8").splitlines()
    exits.write_text(
        "\n".join(line for line in text if not line.startswith("missing,")) + "\n", encoding="utf-8"
    )
    config = load_transmonee(config_copy)
    with pytest.raises(
        SdmxConfigError, match=r"transmonee_exit_destinations\.csv: exit_destination: \['missing'\]"
    ):
        config.check_classification(CLASSIFICATION)
    # In a run, the release stands: the export is empty and says why.
    path = write_transmonee(crafted_release(), CLASSIFICATION, tmp_path, config)
    assert len(path.read_text(encoding="utf-8").splitlines()) == 1
    with (path.parent / "supplied.csv").open(encoding="utf-8", newline="") as handle:
        supplied = {row["indicator"]: row for row in csv.DictReader(handle)}
    assert supplied["PT_CHLD_INRESIDENTIAL"]["status"] == "not_in_release"
    assert "does not fit this run's classification" in supplied["PT_CHLD_INRESIDENTIAL"]["reason"]
    assert "['missing']" in supplied["PT_CHLD_INRESIDENTIAL"]["reason"]


# -- the release as main writes it today: detail rows only -------------------------------------------


def test_the_sample_release_without_margin_rows_gives_no_observation(tmp_path):
    result = run(RunOptions(bundled_samples(), tmp_path / "out"))
    folder = tmp_path / "out" / "release" / "sdmx"
    lines = (folder / "ECARO_TRANSMONEE_1.0.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("DATAFLOW,REF_AREA,INDICATOR,SEX,AGE,RESIDENCE,WEALTH_QUINTILE,TIME_PERIOD")
    with (folder / "supplied.csv").open(encoding="utf-8", newline="") as handle:
        supplied = list(csv.DictReader(handle))
    national = "area_code" in result.release["stock"].column_names and "total" in set(
        result.release["stock"].column("area_code").to_pylist()
    )
    if national:  # the release-totals work has landed: the export then has figures
        assert len(lines) > 1
        return
    assert len(lines) == 1  # the header only: no total is invented from the detail cells
    mapped = [row for row in supplied if row["status"] != "cannot_supply"]
    assert mapped and all(row["status"] == "not_in_release" for row in mapped)
    assert all("no national rows" in row["reason"] for row in mapped)


def test_the_docs_list_every_indicator_of_the_mapping():
    text = (Path(__file__).parents[1] / "docs" / "sdmx.md").read_text(encoding="utf-8")
    supplied = text[
        text.index("## Indicators icare supplies") : text.index("## Indicators icare cannot supply")
    ]
    cannot = text[text.index("## Indicators icare cannot supply") : text.index("## On the bundled sample")]
    for row in load_transmonee().indicators:
        if row.indicator:
            assert f"`{row.indicator}`" in (supplied if row.supplied == "yes" else cannot), row.indicator
        else:
            assert f"({row.tm})" in cannot, row.tm


def test_a_component_icare_does_not_fill_names_the_structure_file(config_copy, tmp_path):
    structure = config_copy / "ECARO_TRANSMONEE_1.0.yaml"
    _edit(structure, "  - {id: WEALTH_QUINTILE, codelist: CL_WEALTH_QUINTILE}\n",
          "  - {id: WEALTH_QUINTILE, codelist: CL_WEALTH_QUINTILE}\n  - {id: DISABILITY}\n")  # fmt: skip
    with pytest.raises(SdmxConfigError, match=r"ECARO_TRANSMONEE_1\.0\.yaml: components \['DISABILITY'\]"):
        write_transmonee(crafted_release(), CLASSIFICATION, tmp_path, load_transmonee(config_copy))
