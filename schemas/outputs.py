"""Every table icare writes: its columns, Arrow types, nullability and meaning, in one place.

The Arrow schema (Parquet and DuckDB types), the Pandera schema that checks a table before it is
written, and the column reference in the README are all derived from these definitions.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.compute as pc

STRING = pa_arrow.string()
INT = pa_arrow.int64()
DATE = pa_arrow.date32()
BOOL = pa_arrow.bool_()
FLOAT = pa_arrow.float64()
TIMESTAMP = pa_arrow.timestamp("us", tz="UTC")


# Ancestor columns published for every classification: a shallower one leaves the deeper columns
# empty; a deeper one is still fully described by ``icare_code`` and ``icare_classification``.
PUBLISHED_LEVELS = 4


def with_level_columns(frame: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """``prefix1`` .. ``prefix{PUBLISHED_LEVELS}`` present (empty where the classification is shallower)."""
    wanted = [f"{prefix}{n}" for n in range(1, PUBLISHED_LEVELS + 1)]
    extra = [
        c for c in frame.columns if c.startswith(prefix) and c[len(prefix) :].isdigit() and c not in wanted
    ]
    frame = frame.drop(columns=extra)
    for column in wanted:
        if column not in frame.columns:
            frame[column] = pd.Series(pd.NA, index=frame.index, dtype="str")
    return frame


@dataclass(frozen=True)
class Col:
    name: str
    type: pa_arrow.DataType
    nullable: bool
    description: str
    allowed: tuple[str, ...] | None = None


def _origin() -> list[Col]:
    return [
        Col("file", STRING, False, "input file, relative to the source folder"),
        Col("sheet", STRING, True, "workbook sheet (empty for CSV)"),
        Col("row_number", INT, False, "row (line) in the file or sheet, counting any rows above the header"),
    ]


SOURCE = Col("source", STRING, False, "national source id, e.g. ssda903")
AREA = Col("area_code", STRING, True, "reporting area (local authority code) where the path names it")
YEAR = Col(
    "collection_year", INT, True, "collection year, named by the year in which it ends (2024 = 2023/24)"
)
CLASSIFICATION_VERSION = Col("classification_version", STRING, False, "ICare classification version id")

CHILD_KEY = Col("child_key", STRING, False, "pseudonymous child key")
SEX = Col("sex", STRING, True, "harmonised sex (empty when not recorded)", ("M", "F", "U"))
AGE_BAND = Col("age_band", STRING, False, "age band in completed years on the date, or unknown")
ICARE_LEVEL1 = Col("icare_level1", STRING, True, "level-1 ancestor of icare_code")
ICARE_LEVEL2 = Col("icare_level2", STRING, True, "level-2 ancestor of icare_code (empty for a level-1 code)")
PERIOD = [
    Col("period_start", DATE, False, "first day of the reporting period (the source's statistical year)"),
    Col("period_end", DATE, False, "last day of the reporting period"),
]

# Rates (docs/statistics.md "Rates"): what is counted, the marker of total rows, why a rate is empty.
SEXES = ("M", "F", "U")
TOTAL = "total"
RATE_MEASURES = ("stock", "entries", "exits")
RATE_MISSING_REASONS = ("no_population", "sex_not_recorded", "zero_population")
POPULATION_SOURCE = Col(
    "population_source", STRING, False, "source of the population figures (e.g. a publisher's estimates)"
)
POPULATION_VINTAGE = Col("population_vintage", STRING, False, "vintage (edition) of the population figures")

# What a correction did (docs/validation-policy.md): a value written another way for the same meaning,
# a known code used outside its years mapped by its meaning, a value replaced by an explicit unknown,
# a value that cannot belong in the cell removed.
CORRECTION_ACTIONS = ("normalised", "mapped_by_meaning", "set_unknown", "dropped_cell")

TABLES: dict[str, list[Col]] = {
    "episodes": [
        SOURCE,
        Col("country", STRING, False, "ISO 3166 code of the country or subdivision (GB-ENG)"),
        AREA,
        Col("collection_year", INT, False, "collection year of the return the row came from"),
        Col("child_key", STRING, False, "pseudonymous child key: keyed hash of source, area and child id"),
        Col("sex", STRING, True, "harmonised sex", ("M", "F", "U")),
        Col("birth_month", DATE, True, "first day of the month of birth (the full date is not kept)"),
        Col("ethnicity", STRING, True, "national ethnicity code as reported"),
        Col("uasc", BOOL, False, "the child was an unaccompanied asylum-seeking child in any return"),
        Col("episode_start", DATE, False, "date the episode started"),
        Col("episode_end", DATE, True, "date the episode ceased (empty while open), after repair"),
        Col("episode_end_reported", DATE, True, "end date as the return reported it"),
        Col(
            "episode_end_type",
            STRING,
            False,
            "open, continues (new episode the same day) or exit",
            ("open", "continues", "exit"),
        ),
        Col("new_episode_type", STRING, False, "harmonised reason for the new episode"),
        Col("exit_destination", STRING, True, "harmonised exit destination when the episode ends care"),
        Col("rne", STRING, True, "national reason for new episode, as reported"),
        Col("ls", STRING, True, "national legal status, as reported"),
        Col("cin", STRING, True, "national category of need, as reported"),
        Col("place", STRING, True, "national placement type, as reported"),
        Col("place_provider", STRING, True, "national placement provider, as reported"),
        Col("rec", STRING, True, "national reason episode ceased, as reported"),
        Col("reason_place_change", STRING, True, "national reason for placement change, as reported"),
        Col("urn", STRING, True, "provider's registration number (Ofsted URN), as reported"),
        Col("icare_code", STRING, False, "ICare category of the episode"),
        Col("icare_level1", STRING, False, "ICare ancestor at level 1"),
        Col("icare_level2", STRING, True, "ICare ancestor at level 2"),
        Col("icare_level3", STRING, True, "ICare ancestor at level 3"),
        Col("icare_level4", STRING, True, "ICare ancestor at level 4"),
        Col("legal_basis", STRING, True, "harmonised legal basis"),
        Col("provider_sector", STRING, True, "harmonised provider sector"),
        Col("purpose", STRING, True, "harmonised purpose of the placement"),
        Col("duration_intent", STRING, True, "harmonised intended duration"),
        Col("regulated", STRING, True, "registered / unregistered setting"),
        Col("concordance_rule", STRING, True, "conditional concordance rule that set the mapping, if any"),
        Col("repair_rule", STRING, True, "episode repair rule that changed the row (docs/episode-repair.md)"),
        Col("overlaps_next", BOOL, False, "the episode is still running when the child's next one starts"),
        *_origin(),
        CLASSIFICATION_VERSION,
        Col("concordance_version", STRING, False, "concordance version id"),
    ],
    "children": [
        SOURCE,
        Col("country", STRING, False, "ISO 3166 code of the country or subdivision"),
        AREA,
        Col("child_key", STRING, False, "pseudonymous child key"),
        Col("sex", STRING, True, "harmonised sex from the latest header row", ("M", "F", "U")),
        Col("birth_month", DATE, True, "first day of the month of birth"),
        Col("ethnicity", STRING, True, "national ethnicity code as reported"),
        Col("uasc", BOOL, False, "unaccompanied asylum-seeking child in any return"),
        Col("first_collection_year", INT, False, "first return with a header row for the child"),
        Col("last_collection_year", INT, False, "latest return with a header row for the child"),
        *_origin(),
    ],
    "quarantine": [
        SOURCE,
        YEAR,
        AREA,
        Col("file", STRING, False, "input file, relative to the source folder"),
        Col("sheet", STRING, True, "workbook sheet (empty for CSV)"),
        Col("table_name", STRING, True, "recognised table (empty when unrecognised)"),
        Col(
            "row_number", INT, True, "row in the file (empty when the whole file is affected and has no rows)"
        ),
        Col("column_name", STRING, True, "column at fault"),
        Col("rule", STRING, False, "rule broken"),
        Col("value", STRING, True, "offending value (identifiers pseudonymised or redacted)"),
        Col("message", STRING, False, "what is wrong and where, in words"),
    ],
    "corrections": [
        SOURCE,
        YEAR,
        AREA,
        Col("file", STRING, False, "input file, relative to the source folder"),
        Col("sheet", STRING, True, "workbook sheet (empty for CSV)"),
        Col("table_name", STRING, False, "recognised table of the row"),
        Col("row_number", INT, False, "row in the file or sheet, the header being row 1"),
        Col("column_name", STRING, False, "column whose value was changed"),
        Col(
            "rule", STRING, False, "validation or normalisation rule that applied (docs/validation-policy.md)"
        ),
        Col("value", STRING, True, "value as received (identifiers pseudonymised or redacted)"),
        Col("action", STRING, False, "what was done with the value", CORRECTION_ACTIONS),
        Col("harmonised_value", STRING, True, "value used from here on (empty: unknown or dropped)"),
        Col("message", STRING, False, "what was wrong and what was done, in words"),
    ],
    "superseded": [
        SOURCE,
        YEAR,
        AREA,
        *_origin(),
        Col("table_name", STRING, False, "table of the row"),
        Col("reason", STRING, False, "why another row stands for this one"),
        Col("kept_file", STRING, True, "file of the row that was kept"),
        Col("kept_sheet", STRING, True, "sheet of the row that was kept"),
        Col("kept_row_number", INT, True, "row number of the row that was kept"),
    ],
    "return_findings": [
        SOURCE,
        YEAR,
        AREA,
        Col("file", STRING, False, "input file, relative to the source folder"),
        Col("sheet", STRING, True, "workbook sheet (empty for CSV or a whole file)"),
        Col("table_name", STRING, True, "recognised table (empty when about a whole file or sheet)"),
        Col(
            "finding",
            STRING,
            False,
            "what was found: hidden_sheet_skipped, identical_copy, child_id_differs_by_leading_zeros, "
            "child_id_leading_zeros_removed or open_episode_absent_from_next_return",
        ),
        Col("count", INT, False, "how many (sheets, rows, child ids or children, as the finding says)"),
        Col("message", STRING, False, "the finding in words (never a child id)"),
    ],
    "reconciliation": [
        SOURCE,
        YEAR,
        AREA,
        Col("file", STRING, False, "input file"),
        Col("sheet", STRING, True, "workbook sheet (empty for CSV)"),
        Col("table_name", STRING, True, "recognised table (empty when unrecognised)"),
        Col("rows_read", INT, False, "non-blank data rows read"),
        Col("rows_accepted", INT, False, "rows now in the harmonised tables"),
        Col(
            "rows_accepted_with_corrections",
            INT,
            False,
            "of rows_accepted, those with at least one value corrected (see corrections)",
        ),
        Col("rows_quarantined", INT, False, "rows in the quarantine table"),
        Col("rows_superseded", INT, False, "rows represented by another row (a later return or a copy)"),
        Col("rows_not_harmonised", INT, False, "rows of recognised tables that this release does not use"),
    ],
    "coverage": [
        SOURCE,
        AREA,
        Col(
            "collection_year",
            INT,
            False,
            "collection year, named by the year in which it ends (2024 = 2023/24)",
        ),
        Col(
            "completeness",
            STRING,
            False,
            "complete (figures published), incomplete (a required table missing, unreadable, empty or "
            "lacking a column) or missing (no file for a year between the area's first and last returns)",
            ("complete", "incomplete", "missing"),
        ),
        Col("reason", STRING, True, "what is wrong, naming the table and file (empty when complete)"),
    ],
    "icare_classification": [
        CLASSIFICATION_VERSION,
        Col("code", STRING, False, "ICare code"),
        Col("level", INT, False, "level in the hierarchy (1 = top)"),
        Col("parent", STRING, True, "parent code"),
        Col("label", STRING, False, "label"),
        Col("definition", STRING, False, "short definition"),
        Col("basis", STRING, True, "basis in the international definitions"),
        Col("in_alternative_care", BOOL, False, "the category is alternative care under the UN Guidelines"),
        Col("boundary", BOOL, False, "boundary category: outside UN GL scope but in national data"),
        Col("level1", STRING, True, "ancestor at level 1"),
        Col("level2", STRING, True, "ancestor at level 2"),
        Col("level3", STRING, True, "ancestor at level 3"),
        Col("level4", STRING, True, "ancestor at level 4"),
    ],
    "icare_dimensions": [
        CLASSIFICATION_VERSION,
        Col("dimension", STRING, False, "dimension name (legal_basis, exit_destination, ...)"),
        Col("code", STRING, False, "value code"),
        Col("label", STRING, False, "label"),
        Col("definition", STRING, True, "definition"),
    ],
    "concordance": [
        SOURCE,
        Col("concordance_version", STRING, False, "concordance version id"),
        CLASSIFICATION_VERSION,
        Col("kind", STRING, False, "mapping (one national column), blank case or conditional rule"),
        Col("priority", INT, True, "order of a conditional rule (first match wins)"),
        Col("rule_id", STRING, True, "id of the conditional rule"),
        Col("target", STRING, True, "harmonised field set (icare_code, legal_basis, ...)"),
        Col("column", STRING, True, "national column read"),
        Col("code", STRING, True, "national code"),
        Col("first_year", INT, True, "first collection year the row applies to"),
        Col("last_year", INT, True, "last collection year (empty = still applies)"),
        Col("condition", STRING, True, "conditions of a rule or blank case, in words"),
        Col("value", STRING, True, "value as written in the concordance"),
        Col("output_value", STRING, True, "value after the classification's crosswalk"),
        Col("decision", STRING, True, "kind of decision (direct, ambiguous, boundary, ...)"),
        Col("reason", STRING, True, "why the code maps there"),
        Col("file", STRING, True, "concordance file holding the row"),
    ],
    "care_spells": [
        SOURCE,
        AREA,
        CHILD_KEY,
        Col("care_spell_no", INT, False, "number of the care spell among the child's spells (1 = first)"),
        SEX,
        Col("birth_month", DATE, True, "first day of the month of birth"),
        Col("spell_start", DATE, False, "start of the care spell (its first episode)"),
        Col("spell_end", DATE, True, "end of the care spell (empty while open)"),
        Col("end_type", STRING, False, "open, or exit (the spell ended)", ("open", "exit")),
        Col("exit_destination", STRING, True, "harmonised exit destination (empty while open)"),
        Col("icare_code_start", STRING, False, "ICare category of the first episode"),
        Col("icare_level1_start", STRING, True, "level-1 ancestor of icare_code_start"),
        Col("icare_level2_start", STRING, True, "level-2 ancestor of icare_code_start"),
        Col(
            "icare_code_end",
            STRING,
            False,
            "ICare category at the end (or latest), temporary moves resolved",
        ),
        Col("icare_level1_end", STRING, True, "level-1 ancestor of icare_code_end"),
        Col("icare_level2_end", STRING, True, "level-2 ancestor of icare_code_end"),
        Col("episodes", INT, False, "episodes in the spell"),
        Col("placement_spells", INT, False, "placement spells in the spell"),
        Col("moves", INT, False, "placement moves in the spell (placement spells - 1)"),
        Col("duration_days", INT, True, "spell_end - spell_start in days (empty while open)"),
        Col("starts_with_entry", BOOL, False, "the first episode's new-episode type is care_entry"),
        Col("previous_spell_end", DATE, True, "end of the child's previous care spell"),
        Col("re_entry", BOOL, False, "starts within the re-entry window after the child's previous exit"),
        Col("overlaps_resolved", INT, False, "episodes of the spell cut by the overlap rule"),
        CLASSIFICATION_VERSION,
    ],
    "placement_spells": [
        SOURCE,
        AREA,
        CHILD_KEY,
        Col("care_spell_no", INT, False, "care spell the placement spell belongs to"),
        Col("placement_spell_no", INT, False, "number of the placement spell in its care spell (1 = first)"),
        SEX,
        Col("birth_month", DATE, True, "first day of the month of birth"),
        Col("placement_start", DATE, False, "start of the placement spell"),
        Col("placement_end", DATE, True, "end: the next placement spell's start or the care spell's end"),
        Col("icare_code_start", STRING, False, "ICare category at the start of the placement spell"),
        Col("icare_level1_start", STRING, True, "level-1 ancestor of icare_code_start"),
        Col("icare_level2_start", STRING, True, "level-2 ancestor of icare_code_start"),
        Col("icare_code_end", STRING, False, "ICare category at the end, temporary moves resolved"),
        Col("icare_level1_end", STRING, True, "level-1 ancestor of icare_code_end"),
        Col("icare_level2_end", STRING, True, "level-2 ancestor of icare_code_end"),
        Col("provider_sector", STRING, True, "harmonised provider sector at the start"),
        Col("episodes", INT, False, "episodes in the placement spell"),
        Col("temporary_episodes", INT, False, "temporary-move episodes inside the placement spell"),
        Col("duration_days", INT, True, "placement_end - placement_start in days (empty while open)"),
        CLASSIFICATION_VERSION,
    ],
    "stock": [
        SOURCE,
        AREA,
        Col("reference_date", DATE, False, "the date counted (the end of a reporting period)"),
        Col("icare_code", STRING, False, "ICare category on the reference date (temporary moves resolved)"),
        ICARE_LEVEL1,
        ICARE_LEVEL2,
        SEX,
        AGE_BAND,
        Col("provider_sector", STRING, True, "harmonised provider sector on the reference date"),
        Col("children", INT, False, "children in care on the reference date"),
        Col(
            "temporary_moves_resolved",
            INT,
            False,
            "of these, children on a temporary move that day, counted in their normal placement",
        ),
        CLASSIFICATION_VERSION,
    ],
    "entries": [
        SOURCE,
        AREA,
        *PERIOD,
        Col("icare_code", STRING, False, "ICare category of the spell's first episode"),
        ICARE_LEVEL1,
        ICARE_LEVEL2,
        SEX,
        Col("age_band", STRING, False, "age band at entry"),
        Col("children", INT, False, "children entering, each counted once, at the first entry of the period"),
        Col("spells", INT, False, "care spells starting in the period"),
        Col("re_entries", INT, False, "of these spells, re-entries (within the re-entry window)"),
        CLASSIFICATION_VERSION,
    ],
    "exits": [
        SOURCE,
        AREA,
        *PERIOD,
        Col("icare_code", STRING, False, "ICare category at exit (temporary moves resolved)"),
        ICARE_LEVEL1,
        ICARE_LEVEL2,
        Col("exit_destination", STRING, False, "harmonised exit destination"),
        SEX,
        Col("age_band", STRING, False, "age band at exit"),
        Col("children", INT, False, "children leaving, each counted once, at the last exit of the period"),
        Col("spells", INT, False, "care spells ending in the period"),
        CLASSIFICATION_VERSION,
    ],
    "moves": [
        SOURCE,
        AREA,
        *PERIOD,
        Col("icare_code", STRING, False, "ICare category of the child's last episode in the period"),
        ICARE_LEVEL1,
        ICARE_LEVEL2,
        SEX,
        Col("age_band", STRING, False, "age band at the period end, or when the last episode ended"),
        Col(
            "moves_in_period",
            STRING,
            False,
            "placement moves the child made in the period",
            ("0", "1", "2", "3 or more"),
        ),
        Col("children", INT, False, "children in care at any time in the period"),
        Col("moves", INT, False, "placement moves these children made in the period"),
        CLASSIFICATION_VERSION,
    ],
    "transitions": [
        SOURCE,
        AREA,
        *PERIOD,
        Col("transition", STRING, False, "entry, move or exit", ("entry", "move", "exit")),
        Col("from_code", STRING, False, "category before (out_of_care for an entry)"),
        Col("from_level1", STRING, True, "level-1 ancestor of from_code"),
        Col("from_level2", STRING, True, "level-2 ancestor of from_code"),
        Col("to_code", STRING, False, "category after (the exit destination for an exit)"),
        Col("to_level1", STRING, True, "level-1 ancestor of to_code"),
        Col("to_level2", STRING, True, "level-2 ancestor of to_code"),
        SEX,
        Col("age_band", STRING, False, "age band at the transition"),
        Col("transitions", INT, False, "transitions in the period"),
        CLASSIFICATION_VERSION,
    ],
    "pathways": [
        SOURCE,
        AREA,
        *PERIOD,
        Col("spell_state", STRING, False, "ended in the period, or open at its end", ("ended", "open")),
        Col("pathway_level", STRING, False, "classification level of the pathway (1, 2, ... or finest)"),
        Col("pathway", STRING, False, "categories of the placement spells, e.g. AC.F12 > AC.F29, or other"),
        SEX,
        Col("age_band", STRING, False, "age band at the start of the care spell"),
        Col("spells", INT, False, "care spells"),
        Col("spells_in_rare_pathways", INT, False, "of these, spells whose pathway was grouped as other"),
        CLASSIFICATION_VERSION,
    ],
    "durations": [
        SOURCE,
        AREA,
        *PERIOD,
        Col(
            "unit",
            STRING,
            False,
            "care_spell (days in care) or placement_spell",
            ("care_spell", "placement_spell"),
        ),
        Col("icare_code", STRING, False, "category at exit (care spell) or at start (placement spell)"),
        ICARE_LEVEL1,
        ICARE_LEVEL2,
        SEX,
        Col("age_band", STRING, False, "age band at the end of the spell"),
        Col("spells", INT, False, "spells ending in the period"),
        Col("spells_start_unknown", INT, False, "of these, care spells that started before the data"),
        Col("days_q1", FLOAT, True, "first quartile of days (linear interpolation)"),
        Col("days_median", FLOAT, True, "median days"),
        Col("days_q3", FLOAT, True, "third quartile of days"),
        CLASSIFICATION_VERSION,
    ],
    "durations_totals": [
        SOURCE,
        Col("area_code", STRING, True, "reporting area, or total (all areas of the source)"),
        *PERIOD,
        Col("unit", STRING, False, "care_spell or placement_spell", ("care_spell", "placement_spell")),
        Col(
            "icare_level",
            STRING,
            False,
            "code, level2, level1 or total (the ICare hierarchy)",
            ("code", "level2", "level1", TOTAL),
        ),
        Col("icare_code", STRING, False, "category (at the row's level), or total"),
        Col("icare_level1", STRING, True, "level-1 category of the row, or total"),
        Col("icare_level2", STRING, True, "level-2 category of the row, or total"),
        Col("sex", STRING, True, "harmonised sex, or total", (*SEXES, TOTAL)),
        Col("age_band", STRING, False, "age band at the end of the spell, under 18, or total"),
        Col("spells", INT, False, "spells ending in the period"),
        Col("spells_start_unknown", INT, False, "of these, care spells that started before the data"),
        Col("days_q1", FLOAT, True, "first quartile of days (linear interpolation)"),
        Col("days_median", FLOAT, True, "median days"),
        Col("days_q3", FLOAT, True, "third quartile of days"),
        CLASSIFICATION_VERSION,
    ],
    "flow_check": [
        SOURCE,
        AREA,
        *PERIOD,
        Col("stock_start", INT, False, "children in care on the day before the period"),
        Col("entries", INT, False, "care spells starting in the period"),
        Col("exits", INT, False, "care spells ending in the period"),
        Col("stock_end", INT, False, "children in care on the last day of the period"),
        Col("difference", INT, False, "stock_end - (stock_start + entries - exits); 0 when balanced"),
        Col(
            "overlap_records_set_aside_start",
            INT,
            False,
            "records running on the start date that the overlap rule set aside",
        ),
        Col("overlap_records_set_aside_end", INT, False, "the same on the end date"),
        Col("overlaps_resolved_in_period", INT, False, "overlaps resolved at a date in the period"),
        Col("balance", STRING, False, "balanced or difference", ("balanced", "difference")),
        CLASSIFICATION_VERSION,
    ],
    "statistics_findings": [
        SOURCE,
        AREA,
        CHILD_KEY,
        Col("care_spell_no", INT, False, "care spell concerned"),
        Col("finding_date", DATE, True, "date of the episode or event concerned"),
        Col(
            "finding",
            STRING,
            False,
            "what was found",
            (
                "overlap_resolved",
                "continues_without_next_episode",
                "care_spell_starts_without_entry",
                "temporary_move_without_normal_placement",
            ),
        ),
        Col("detail", STRING, False, "the finding in words"),
        CLASSIFICATION_VERSION,
    ],
    "population": [
        SOURCE,
        Col("area_code", STRING, True, "reporting area the population is of (as in the returns' area_code)"),
        Col("year", INT, False, "year of the estimate (mid-year estimates: 30 June of that year)"),
        Col("sex", STRING, False, "harmonised sex", ("M", "F", "U")),
        Col("age", INT, False, "single year of age, completed years (0-17)"),
        Col("population", INT, False, "children of that area, year, sex and age"),
        POPULATION_SOURCE,
        POPULATION_VINTAGE,
    ],
    "rates": [
        SOURCE,
        AREA,
        *PERIOD,
        Col(
            "measure",
            STRING,
            False,
            "stock (children in care on period_end), entries or exits (children entering or leaving in the "
            "period)",
            RATE_MEASURES,
        ),
        Col("icare_code", STRING, False, "ICare category as counted (finest code), or total over categories"),
        ICARE_LEVEL1,
        ICARE_LEVEL2,
        Col(
            "sex",
            STRING,
            True,
            "harmonised sex, or total over sexes (empty when not recorded)",
            (*SEXES, TOTAL),
        ),
        Col("age_band", STRING, False, "age band inside 0-17, or total (ages 0-17)"),
        Col("children", INT, False, "children counted (the count the rate is computed from)"),
        Col(
            "population_year",
            INT,
            False,
            "year of the population estimate used (settings: population_year_offset)",
        ),
        Col("population", INT, True, "children aged 0-17 of the same source, area, year, sex and age band"),
        Col(
            "rate_per_100000", FLOAT, True, "100,000 x children / population, not rounded (empty: see reason)"
        ),
        Col(
            "rate_missing_reason",
            STRING,
            True,
            "why the rate is empty: no population figure, sex not recorded, or a population of 0",
            RATE_MISSING_REASONS,
        ),
        Col("population_source", STRING, True, "source of the population used (empty when none was found)"),
        Col("population_vintage", STRING, True, "vintage of the population used (empty when none was found)"),
        CLASSIFICATION_VERSION,
    ],
    "runs": [
        Col("run_id", STRING, False, "run identifier"),
        Col("started_at", TIMESTAMP, False, "start time (UTC)"),
        Col("finished_at", TIMESTAMP, False, "end time (UTC)"),
        Col("icare_version", STRING, False, "icare software version"),
        CLASSIFICATION_VERSION,
        Col("concordance_versions", STRING, False, "JSON: source -> concordance version id"),
        Col("pseudonym_key_fingerprint", STRING, False, "identifies the key used, without revealing it"),
        Col("development_key", BOOL, False, "the public development key was used (bundled sample only)"),
        Col("inputs", STRING, False, "JSON list: source, file, sha256, bytes, collection year, area"),
        Col("row_counts", STRING, False, "JSON: rows read, accepted, quarantined, superseded per source"),
        Col("timings", STRING, False, "JSON: seconds per step"),
        Col("statistics_settings", STRING, False, "JSON: statistics settings used (config/statistics.yaml)"),
        Col(
            "disclosure_rules",
            STRING,
            False,
            "JSON: disclosure rules applied to the release (config/disclosure.yaml)",
        ),
        Col(
            "population",
            STRING,
            True,
            "JSON: population files used for rates (names, checksum, source, vintage)",
        ),
    ],
    "inputs": [
        SOURCE,
        Col("file", STRING, False, "input file, relative to the source folder"),
        Col("sha256", STRING, False, "SHA-256 of the file's bytes"),
        Col("size_bytes", INT, False, "file size"),
        YEAR,
        AREA,
    ],
}


# What one row of each table is: the asset descriptions in Dagster, and the README's list of tables
# (tests/test_docs.py checks that the two agree).
TABLE_DESCRIPTIONS: dict[str, str] = {
    "episodes": (
        "harmonised episode: a period during which a child's placement and legal status did not change, "
        "with its ICare category, dimensions, the national codes as reported and where the row came from"
    ),
    "children": "child: sex, month of birth, ethnicity and UASC status from the child's latest header row",
    "quarantine": "rejected input row and rule it broke (a row can have several records)",
    "corrections": (
        "changed input value: where it was, the rule, the value received, what was done and the value used"
    ),
    "superseded": "input row that another row stands for (a later return, or an identical copy)",
    "return_findings": (
        "finding about an input file, counted (hidden sheet skipped, identical copy, child ids that differ "
        "by leading zeros, open episodes absent from the next return)"
    ),
    "reconciliation": "table read (a CSV file or a workbook sheet), with what became of its rows",
    "coverage": (
        "return (source × area × collection year): complete, incomplete or missing, and why; the years "
        "of returns that are not complete have no stock or flows"
    ),
    "inputs": "input file, with its SHA-256 checksum",
    "icare_classification": "category of the classification in force",
    "icare_dimensions": "value of a dimension or flat code list of the classification",
    "concordance": (
        "row of the national-to-ICare concordance in force (mapping, blank case or conditional rule), "
        "with its decision and reason"
    ),
    "care_spells": (
        "care spell (period of care) of a child: start, end, exit destination, categories at start and "
        "end, moves, re-entry"
    ),
    "placement_spells": (
        "placement spell (same carers) inside a care spell: start, end, categories, provider sector"
    ),
    "stock": "reference date × ICare category × sex × age band × provider sector: children in care that day",
    "entries": "period × category at entry × sex × age band: care spells starting, children, re-entries",
    "exits": "period × category at exit × exit destination × sex × age band: care spells ending, children",
    "moves": (
        "period × category × sex × age band × number of moves (0, 1, 2, 3 or more): children in care "
        "during the period and their moves"
    ),
    "transitions": "period × entry/move/exit × from-category × to-category × sex × age band: transitions",
    "pathways": (
        "period × ended/open × level × pathway × sex × age band: care spells (rare pathways as `other`)"
    ),
    "durations": (
        "period × care or placement spell × category × sex × age band: spells ending, quartiles of days"
    ),
    "durations_totals": (
        "the margin rows of `durations` (totals over areas, categories, sexes, ages), quartiles computed "
        "from the spells: read by the release"
    ),
    "flow_check": "source × area × period: stock at start + entries − exits against stock at end",
    "statistics_findings": "data-quality finding met while building spells (overlaps, broken chains, ...)",
    "runs": (
        "run: versions, key fingerprint, inputs, row counts, timings, statistics settings, "
        "disclosure rules and population files"
    ),
    "population": (
        "source × area × year × sex × single year of age 0-17: the child population given as the rates' "
        "denominator, with its source and vintage"
    ),
    "rates": (
        "period × stock/entries/exits × category × sex × age band 0-17 (and totals): children, population "
        "and rate per 100,000 children"
    ),
}


# -- the disclosure-controlled release (outputs/release/, DuckDB schema ``release``) ---------------
RELEASE_SCHEMA = "release"
# The one table released without disclosure control: it holds no counts.
COVERAGE = "coverage"
# Confidentiality status of a released value: the SDMX code list CL_CONF_STATUS (docs/disclosure.md).
CONF_FREE = "F"  # free for publication
CONF_PRIMARY = "A"  # primary confidentiality due to small counts
CONF_SECONDARY = "D"  # secondary confidentiality set by the sender, not for publication
CONF_STATUS = (CONF_FREE, CONF_PRIMARY, CONF_SECONDARY)
# The count columns of each released aggregate table. In the release each may be empty (withheld)
# and is followed by ``<column>_status``; config/disclosure.yaml must protect exactly these.
RELEASE_COUNTS: dict[str, tuple[str, ...]] = {
    "stock": ("children", "temporary_moves_resolved"),
    "entries": ("children", "spells", "re_entries"),
    "exits": ("children", "spells"),
    "moves": ("children", "moves"),
    "transitions": ("transitions",),
    "pathways": ("spells", "spells_in_rare_pathways"),
    "durations": ("spells", "spells_start_unknown"),
    "flow_check": (
        "stock_start",
        "entries",
        "exits",
        "stock_end",
        "overlap_records_set_aside_start",
        "overlap_records_set_aside_end",
        "overlaps_resolved_in_period",
    ),
}
# Released tables that carry margin rows (docs/disclosure.md "Totals"): a summed dimension holds TOTAL,
# ``icare_level`` says which level of the ICare hierarchy a row is at, ``is_total`` marks margin rows.
RELEASE_WITH_TOTALS = ("stock", "entries", "exits", "moves", "transitions", "pathways", "durations")
ICARE_LEVELS = ("code", "level2", "level1", TOTAL)
UNDER_18 = "under 18"  # the age band of margin rows over the bands inside ages 0-17
# Released tables with rates per 100,000 children beside ``children`` (docs/disclosure.md "Rates").
RELEASE_WITH_RATES = RATE_MEASURES
RELEASE_RATE_MISSING_REASONS = (*RATE_MISSING_REASONS, "age_outside_0_17", "withheld")
# Derived columns withheld together, with the status column that follows the last of them.
RELEASE_DERIVED: dict[str, dict[str, tuple[str, ...]]] = {
    "durations": {"days_status": ("days_q1", "days_median", "days_q3")},
}


def _status_col(subject: str, name: str) -> Col:
    return Col(
        name,
        STRING,
        False,
        f"confidentiality of {subject} (SDMX CONF_STATUS): F published, A withheld as a small count "
        "(primary), D withheld so that another withheld value cannot be recovered (secondary)",
        CONF_STATUS,
    )


_ICARE_LEVEL = Col(
    "icare_level",
    STRING,
    False,
    "level of the row in the ICare hierarchy: code (as harmonised), level2 or level1 (subtotal of that "
    "category, in icare_code), or total (all categories)",
    ICARE_LEVELS,
)
_IS_TOTAL = Col("is_total", BOOL, False, "a margin row: some dimension holds a total or subtotal")
_RATE_COLUMNS = [
    Col(
        "population",
        INT,
        True,
        "children aged 0-17 of the row's source, area (total: every area of the source), population year, "
        "sex and age band (empty when not known or the age band is not inside 0-17)",
    ),
    Col("rate_per_100000", FLOAT, True, "100,000 x children / population (empty: see rate_missing_reason)"),
    _status_col("`rate_per_100000` (that of `children`)", "rate_status"),
    Col(
        "rate_missing_reason",
        STRING,
        True,
        "why the rate is empty: no population, sex not recorded, a population of 0, an age band not "
        "inside 0-17, or withheld with its count",
        RELEASE_RATE_MISSING_REASONS,
    ),
]


def _released_col(table: str, col: Col) -> Col:
    """A dimension as released: a summable one may also hold ``total``."""
    if table in RELEASE_WITH_TOTALS and col.allowed and col.name in ("sex", "moves_in_period"):
        return Col(col.name, col.type, col.nullable, f"{col.description}, or total", (*col.allowed, TOTAL))
    return col


def _release_columns(table: str) -> list[Col]:
    """The internal table's columns, each count nullable and followed by its status column; with
    totals, ``icare_level`` before ``icare_code`` and ``is_total`` before the counts; with rates, the
    rate columns after the counts."""
    counts = RELEASE_COUNTS[table]
    derived_last = {columns[-1]: status for status, columns in RELEASE_DERIVED.get(table, {}).items()}
    columns = []
    for col in TABLES[table]:
        if col.name == counts[0] and table in RELEASE_WITH_TOTALS:
            columns.append(_IS_TOTAL)
        if col.name == "classification_version" and table in RELEASE_WITH_RATES:
            columns.extend(_RATE_COLUMNS)
        if col.name == "icare_code" and table in RELEASE_WITH_TOTALS:
            columns.append(_ICARE_LEVEL)
        if col.name in counts:
            columns.append(Col(col.name, col.type, True, f"{col.description} (empty when withheld)"))
            columns.append(_status_col(f"`{col.name}`", f"{col.name}_status"))
            continue
        col = _released_col(table, col)
        columns.append(col)
        if col.name in derived_last:
            withheld = RELEASE_DERIVED[table][derived_last[col.name]]
            columns.append(_status_col(", ".join(f"`{c}`" for c in withheld), derived_last[col.name]))
    return columns


# Indicators computed after control from the released tables alone (docs/indicators.md).
INDICATORS = "indicators"
INDICATOR_UNITS = ("count", "share_percent", "rate_per_100000", "days")
INDICATOR_MISSING_REASONS = ("withheld", "no_denominator", "zero_denominator", "not_reportable")


def _optional_status(subject: str, name: str) -> Col:
    """A status that is empty where its value does not exist (not reportable, no denominator)."""
    col = _status_col(subject, name)
    return Col(col.name, col.type, True, f"{col.description}; empty when there is no such value", col.allowed)


def _indicator_dimension(name: str, what: str) -> Col:
    return Col(
        name, STRING, True, f"{what} of the numerator's rows (total: all; empty: not a column of its table)"
    )


_INDICATOR_COLUMNS = [
    SOURCE,
    Col(
        "area_code",
        STRING,
        True,
        "reporting area, or total (all areas of the source); empty when not reportable",
    ),
    Col("period_start", DATE, True, "first day of the period (empty for a figure on a reference date)"),
    Col("period_end", DATE, True, "last day of the period, or the reference date of a stock figure"),
    Col("indicator_id", STRING, False, "indicator id (config/indicators.yaml)"),
    Col("unit", STRING, False, "unit of value", INDICATOR_UNITS),
    _indicator_dimension("sex", "harmonised sex"),
    _indicator_dimension("age_band", "age band"),
    _indicator_dimension("icare_level", "ICare level"),
    _indicator_dimension("icare_code", "ICare category"),
    _indicator_dimension("exit_destination", "harmonised exit destination"),
    _indicator_dimension("provider_sector", "provider sector"),
    Col("reportable", BOOL, False, "the source can give the indicator (else see not_reportable_reason)"),
    Col("value", FLOAT, True, "the indicator's value in its unit (empty: see missing_reason)"),
    _optional_status(
        "`value`: A or D as its numerator, else D when its denominator is withheld", "value_status"
    ),
    Col(
        "missing_reason",
        STRING,
        True,
        "why value is empty: withheld with its numerator or denominator, no denominator, a denominator of 0, "
        "or not reportable from the source",
        INDICATOR_MISSING_REASONS,
    ),
    Col("not_reportable_reason", STRING, True, "what the source lacks to give the indicator"),
    Col("numerator", FLOAT, True, "the released figure the value is computed from (empty when withheld)"),
    _optional_status("`numerator` (as released)", "numerator_status"),
    Col("denominator", FLOAT, True, "the released figure divided by (empty when withheld or not used)"),
    _optional_status("`denominator` (as released; F for a population)", "denominator_status"),
    Col(
        "indicator_definitions",
        STRING,
        False,
        "indicator definitions id and version (config/indicators.yaml)",
    ),
]


RELEASE_TABLES: dict[str, list[Col]] = {
    **{table: _release_columns(table) for table in RELEASE_COUNTS},
    # Not disclosive (no counts): released as it is, so a reader of the release sees the years left out.
    COVERAGE: TABLES[COVERAGE],
    INDICATORS: _INDICATOR_COLUMNS,
    "disclosure_summary": [
        Col("table_name", STRING, False, "released table"),
        Col("column_name", STRING, False, "count column, or the derived columns withheld together"),
        Col("method", STRING, False, "disclosure control method", ("suppress", "round")),
        Col("cells", INT, False, "values of the column in the table (its rows)"),
        Col("published", INT, False, "values published (status F)"),
        Col("primary_suppressed", INT, False, "values withheld as small counts (status A)"),
        Col("secondary_suppressed", INT, False, "values withheld to protect other values (status D)"),
        Col(
            "unprotected_groups",
            INT,
            False,
            "margin groups (or flow_check rows) with one withheld value and no value left to withhold "
            "beside it: their total is that value, so it must not be published elsewhere",
        ),
        Col("disclosure_rules", STRING, False, "disclosure rules id and version (config/disclosure.yaml)"),
    ],
}
RELEASE_DESCRIPTIONS: dict[str, str] = {
    **{
        table: f"as `{table}`, disclosure-controlled: each count with its confidentiality status"
        + (", plus its margin rows (totals: `is_total`)" if table in RELEASE_WITH_TOTALS else "")
        + (" and rates per 100,000 children" if table in RELEASE_WITH_RATES else "")
        for table in RELEASE_COUNTS
    },
    COVERAGE: "as `coverage`: each return and whether its year's figures are published",
    INDICATORS: "indicator × source × area × period × disaggregation: value computed from the released "
    "tables, with the confidentiality status of its numerator and denominator",
    "disclosure_summary": "released table × count column: values published, withheld (primary, secondary)",
}


def release_name(table: str) -> str:
    """The DuckDB name of a released table: ``release.<table>``."""
    return f"{RELEASE_SCHEMA}.{table}"


def table_columns(table: str) -> list[Col]:
    """A table's columns: ``TABLES[table]``, or ``RELEASE_TABLES`` for ``release.<table>``."""
    prefix = f"{RELEASE_SCHEMA}."
    if table.startswith(prefix):
        return RELEASE_TABLES[table[len(prefix) :]]
    return TABLES[table]


def column_names(table: str) -> list[str]:
    """The columns of a published table, in order (the one definition of each table's layout)."""
    return [c.name for c in table_columns(table)]


def arrow_schema(table: str) -> pa_arrow.Schema:
    columns = table_columns(table)
    return pa_arrow.schema([pa_arrow.field(c.name, c.type, nullable=c.nullable) for c in columns])


def _pandera_column(col: Col) -> pa.Column:
    checks = [pa.Check.isin(list(col.allowed))] if col.allowed else []
    return pa.Column(nullable=col.nullable, checks=checks)


def pandera_schema(table: str) -> pa.DataFrameSchema:
    """Checks a table before it is written: columns present, required values filled, codes allowed."""
    return pa.DataFrameSchema(
        {c.name: _pandera_column(c) for c in table_columns(table)}, strict=True, name=table
    )


class OutputSchemaError(ValueError):
    """A table computed in Arrow breaks its published definition; the message names each failure."""


def validate_arrow(data: pa_arrow.Table, table: str, *, encoded: bool = False) -> pa_arrow.Table:
    """The checks of ``pandera_schema`` for a table computed in Arrow (DuckDB), without pandas.

    Columns exactly as defined, types cast to the explicit schema, required values filled, codes
    allowed. Every failure is collected before raising, as Pandera's lazy mode does. A
    dictionary-encoded text column is decoded to the published type, unless ``encoded``.
    """
    expected = column_names(table)
    if data.column_names != expected:
        raise OutputSchemaError(f"{table}: columns {data.column_names} are not the defined {expected}")
    schema = arrow_schema(table)
    data = data.cast(_encoded_schema(schema, data.schema) if encoded else schema)
    failures = []
    for col in table_columns(table):
        values = data.column(col.name)
        if not col.nullable and values.null_count:
            failures.append(f"{col.name}: {values.null_count} empty value(s) in a required column")
        if col.allowed:
            outside = pc.unique(pc.filter(values, pc.invert(pc.is_in(values, pa_arrow.array(col.allowed)))))
            outside = [v for v in _plain(outside).to_pylist() if v is not None]
            if outside:
                failures.append(f"{col.name}: values {sorted(outside)} not in {list(col.allowed)}")
    if failures:
        raise OutputSchemaError(f"{table}: " + "; ".join(failures))
    return data


def _plain(values: pa_arrow.Array | pa_arrow.ChunkedArray) -> pa_arrow.Array | pa_arrow.ChunkedArray:
    """Dictionary-encoded values decoded (other values as they are)."""
    if pa_arrow.types.is_dictionary(values.type):
        return values.cast(values.type.value_type)
    return values


def _encoded_schema(schema: pa_arrow.Schema, held: pa_arrow.Schema) -> pa_arrow.Schema:
    """``schema`` with each text field that ``held`` has dictionary-encoded as a dictionary of that
    text type (same names, nullability and order): what an encoded table is cast to."""
    fields = []
    for field in schema:
        kind = held.field(field.name).type
        if pa_arrow.types.is_dictionary(kind) and pa_arrow.types.is_string(field.type):
            field = field.with_type(pa_arrow.dictionary(kind.index_type, field.type))
        fields.append(field)
    return pa_arrow.schema(fields, metadata=schema.metadata)


def to_arrow(frame: pd.DataFrame | pa_arrow.Table, table: str, *, encoded: bool = False) -> pa_arrow.Table:
    """Validate ``frame`` and convert it with the table's explicit Arrow schema.

    Text held as pandas categoricals (or Arrow dictionaries) is decoded to the published plain
    text, unless ``encoded``: it then stays dictionary-encoded (same names, order, nullability and
    values; about half the memory of plain text) for a table held between steps, and is decoded
    when written (``validate_arrow``).
    """
    if isinstance(frame, pa_arrow.Table):
        return validate_arrow(frame, table, encoded=encoded)
    pandera_schema(table).validate(frame, lazy=True)
    schema = arrow_schema(table)
    columns = {}
    for field in schema:
        values = frame[field.name]
        if pa_arrow.types.is_date32(field.type) or pa_arrow.types.is_timestamp(field.type):
            stamps = pa_arrow.array(pd.to_datetime(values, utc=field.type == TIMESTAMP), from_pandas=True)
            columns[field.name] = stamps.cast(field.type)
            continue
        if pa_arrow.types.is_string(field.type) and values.dtype == object:
            values = values.where(values.notna(), None)
        if pa_arrow.types.is_string(field.type) and isinstance(values.dtype, pd.CategoricalDtype):
            # Through Arrow's dictionary: converting a categorical to text directly is ten times slower.
            dictionary = pa_arrow.array(values, from_pandas=True)
            kind = pa_arrow.dictionary(dictionary.type.index_type, field.type) if encoded else field.type
            columns[field.name] = dictionary.cast(kind)
            continue
        columns[field.name] = pa_arrow.array(values, type=field.type, from_pandas=True)
    # The schema keeps each field's nullability (a table built from columns alone would not).
    held = [field.with_type(columns[field.name].type) for field in schema]
    return pa_arrow.table(columns, schema=pa_arrow.schema(held, metadata=schema.metadata))
