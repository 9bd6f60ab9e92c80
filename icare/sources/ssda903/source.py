"""England SSDA903: the reader and harmonisation behind the source interface.

What is England-specific lives here and in ``sources/ssda903/`` (reader spec, code lists,
concordance): which tables feed the harmonised data, how SEX and DOB are minimised, and which
national columns are kept as they were. Combining returns and repairing open episodes is generic
(``icare.episodes``).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pandas as pd
import pandera.pandas as pa

from icare import episodes as episode_rules
from icare import quarantine
from icare.classification import Classification
from icare.codelists import load_codelists
from icare.concordance import Concordance, load_concordance
from icare.discovery import discover
from icare.extraction import extract
from icare.pseudonymise import Pseudonymiser
from icare.sources.base import Extraction, Harmonised, InputFile
from icare.sources.spec import SourceSpec, load_source_spec
from icare.vectorised import text_isin
from schemas import ssda903 as schemas

NAME = "ssda903"
# National columns carried into the harmonised episodes unchanged (postcodes are not carried).
NATIONAL_COLUMNS = {
    "RNE": "rne",
    "LS": "ls",
    "CIN": "cin",
    "PLACE": "place",
    "PLACE_PROVIDER": "place_provider",
    "REC": "rec",
    "REASON_PLACE_CHANGE": "reason_place_change",
    "URN": "urn",
}
EPISODE_COMPARE = ["DEC", "RNE", "LS", "CIN", "PLACE", "PLACE_PROVIDER", "REC", "REASON_PLACE_CHANGE", "URN"]


class Ssda903Source:
    """Reads SSDA903 returns (CSV or XLSX, any mix of collection years) into harmonised episodes."""

    name = NAME

    def __init__(
        self,
        classification: Classification,
        pseudonymiser: Pseudonymiser,
        spec: SourceSpec | None = None,
        concordance: Concordance | None = None,
    ) -> None:
        self.spec = spec or load_source_spec(NAME)
        self.classification = classification
        self.pseudonymiser = pseudonymiser
        self.codelists = load_codelists(self.spec.codelists_path)
        self.concordance = concordance or load_concordance(self.spec.concordance_dir, classification)

    # -- extraction -------------------------------------------------------------------------
    def discover(self, root: Path) -> list[InputFile]:
        return discover(root, self.spec)

    def extract(self, files: list[InputFile]) -> Extraction:
        schema_for = cache(self._schema)
        return extract(files, self.spec, schema_for, prepare=self._prepare)

    def _schema(self, table: str, year: int) -> pa.DataFrameSchema:
        return schemas.SCHEMAS[table](self.codelists, year)

    @staticmethod
    def _prepare(table: str, frame: pd.DataFrame) -> pd.DataFrame:
        return schemas.add_parsed_dates(frame, schemas.DATE_COLUMNS.get(table, []))

    # -- harmonisation ----------------------------------------------------------------------
    def harmonise(self, extraction: Extraction) -> Harmonised:
        parts = _Parts()
        header = self._with_keys(extraction.valid.get("header", _empty_valid("header")), "header")
        uasc = self._with_keys(extraction.valid.get("uasc", _empty_valid("uasc")), "uasc")
        raw_episodes = self._with_keys(extraction.valid.get("episodes", _empty_valid("episodes")), "episodes")

        children = self._children(header, uasc, parts)
        episodes = self._map(raw_episodes, parts)
        split = episode_rules.resolve_duplicates(episodes, episode_rules.EPISODE, EPISODE_COMPARE)
        parts.add_split(split)
        episodes = self._drop_older_versions_of_rejected(split.kept, extraction, parts)
        episodes = self._attach_child(episodes, children, extraction, parts)
        latest_year = _latest_year_by_area(extraction.files)
        blocked = self._children_with_rejected_episodes(extraction)
        repaired = episode_rules.repair_open_episodes(
            episodes, latest_year, blocked, self.spec.year_start_month, self.spec.year_start_day
        )
        parts.add_split(repaired)
        episodes = repaired.kept
        episodes["overlaps_next"] = episode_rules.flag_overlaps(episodes)
        accepted = pd.concat(
            [
                episodes[[*episode_rules.ORIGIN, "table_name"]],
                children.accepted_rows,
                uasc.loc[
                    text_isin(uasc["child_key"], children.table["child_key"]),
                    [*episode_rules.ORIGIN, "table_name"],
                ],
            ]
        )
        quarantine_records = parts.quarantine(
            uasc_orphans=uasc.loc[~text_isin(uasc["child_key"], children.table["child_key"])]
        )
        return Harmonised(
            source=NAME,
            episodes=self._finish(episodes),
            children=children.table,
            quarantine=quarantine_records,
            superseded=parts.superseded_table(),
            accepted_rows=accepted,
            concordance=self.concordance.to_frame(),
            versions={"concordance": self.concordance.version_id},
        )

    def _with_keys(self, frame: pd.DataFrame, table: str) -> pd.DataFrame:
        frame = frame.assign(table_name=table)
        frame["child_key"] = self.pseudonymiser.child_keys(NAME, frame["area_code"], frame["CHILD"])
        return frame

    def _children(self, header: pd.DataFrame, uasc: pd.DataFrame, parts: _Parts) -> _Children:
        """One row per child: the latest return's header wins; UASC in any return flags the child."""
        split = episode_rules.resolve_duplicates(header, episode_rules.CHILD, ["SEX", "DOB", "ETHNIC"])
        parts.add_split(split)
        latest = split.kept
        years = header.groupby(episode_rules.CHILD, dropna=False)["collection_year"].agg(["min", "max"])
        dob = latest[schemas.parsed_date_column("DOB")]
        table = pd.DataFrame(
            {
                "source": NAME,
                "country": self.spec.country,
                "area_code": latest["area_code"],
                "child_key": latest["child_key"],
                "sex": latest["SEX"].map(self.spec.sex_codes),
                "birth_month": dob.dt.to_period("M").dt.to_timestamp(),
                "ethnicity": latest["ETHNIC"],
                "uasc": text_isin(latest["child_key"], uasc["child_key"]),
                "file": latest["file"],
                "sheet": latest["sheet"],
                "row_number": latest["row_number"],
            }
        )
        table = table.join(years, on=episode_rules.CHILD).rename(
            columns={"min": "first_collection_year", "max": "last_collection_year"}
        )
        return _Children(table=table, accepted_rows=latest[[*episode_rules.ORIGIN, "table_name"]])

    def _map(self, episodes: pd.DataFrame, parts: _Parts) -> pd.DataFrame:
        """National codes onto ICare and the dimensions; an unmapped code is quarantined, never defaulted."""
        result = self.concordance.apply(episodes, year_column="collection_year")
        mapped = episodes.join(result.values)
        if len(result.unmapped):
            rows = episodes.loc[result.unmapped["index"]]
            parts.rejected.append(
                quarantine.for_rows(rows, None, "unmapped_code", "x").assign(
                    column_name=result.unmapped["column"].to_numpy(),
                    value=result.unmapped["value"].astype(object).to_numpy(),
                    message=result.unmapped["message"].to_numpy(),
                )
            )
            mapped = mapped.drop(index=pd.Index(result.unmapped["index"].unique()))
        start = mapped[schemas.parsed_date_column("DECOM")]
        end = mapped[schemas.parsed_date_column("DEC")]
        return mapped.assign(
            episode_start=start,
            episode_end=end,
            episode_end_reported=end,
            episode_end_type=_end_type(end, mapped["exit_destination"]),
        )

    def _drop_older_versions_of_rejected(
        self, episodes: pd.DataFrame, extraction: Extraction, parts: _Parts
    ) -> pd.DataFrame:
        """An older return's row must not stand in for a later row of the same episode that failed."""
        rejected = extraction.rejected.get("episodes")
        if rejected is None or rejected.empty:
            return episodes
        rejected = self._with_keys(rejected, "episodes").assign(
            episode_start=rejected[schemas.parsed_date_column("DECOM")].to_numpy()
        )
        later = rejected.dropna(subset=["episode_start"])[
            [*episode_rules.EPISODE, "collection_year", *episode_rules.ORIGIN]
        ].rename(
            columns={
                "collection_year": "rejected_year",
                "file": "rejected_file",
                "row_number": "rejected_row",
            }
        )
        pairs = episodes.reset_index().merge(later, on=episode_rules.EPISODE)
        pairs = pairs[pairs["rejected_year"] > pairs["collection_year"]].drop_duplicates("index")
        if pairs.empty:
            return episodes
        rows = episodes.loc[pairs["index"]]
        parts.rejected.append(
            quarantine.for_rows(
                rows,
                "DECOM",
                "later_version_quarantined",
                "a later return's row for this episode ("
                + pairs["rejected_file"].astype(str)
                + " row "
                + pairs["rejected_row"].astype(str)
                + ") is quarantined; fix it rather than fall back on this older row",
                rows["DECOM"],
            )
        )
        return episodes.drop(index=pairs["index"])

    def _attach_child(
        self, episodes: pd.DataFrame, children: _Children, extraction: Extraction, parts: _Parts
    ) -> pd.DataFrame:
        """Sex and month of birth from the child's header; an episode without one is quarantined."""
        known = text_isin(episodes["child_key"], children.table["child_key"])
        if not known.all():
            orphans = episodes.loc[~known]
            rejected_header = extraction.rejected.get("header")
            had_bad_header = pd.Series(False, index=orphans.index)
            if rejected_header is not None and len(rejected_header):
                bad_keys = self._with_keys(rejected_header, "header")["child_key"]
                had_bad_header = pd.Series(text_isin(orphans["child_key"], bad_keys), index=orphans.index)
            message = pd.Series(
                "the child has no header row (CHILD, SEX, DOB) in any return, so sex and age are unknown",
                index=orphans.index,
            ).where(~had_bad_header, "the child's header row is quarantined; fix it and run again")
            parts.rejected.append(
                quarantine.for_rows(orphans, "CHILD", "missing_header", message, orphans["CHILD"])
            )
            episodes = episodes.loc[known]
        attributes = children.table.set_index("child_key")[["sex", "birth_month", "ethnicity", "uasc"]]
        return episodes.join(attributes, on="child_key")

    def _children_with_rejected_episodes(self, extraction: Extraction) -> pd.DataFrame:
        rejected = extraction.rejected.get("episodes")
        if rejected is None or rejected.empty:
            return pd.DataFrame(columns=[*episode_rules.CHILD, "collection_year"])
        keyed = self._with_keys(rejected, "episodes")
        return keyed[[*episode_rules.CHILD, "collection_year"]].drop_duplicates()

    def _finish(self, episodes: pd.DataFrame) -> pd.DataFrame:
        levels = self.classification.level_columns(episodes["icare_code"])
        out = pd.DataFrame(
            {
                "source": NAME,
                "country": self.spec.country,
                "area_code": episodes["area_code"],
                "collection_year": episodes["collection_year"],
                "child_key": episodes["child_key"],
                "sex": episodes["sex"],
                "birth_month": episodes["birth_month"],
                "ethnicity": episodes["ethnicity"],
                "uasc": episodes["uasc"],
                "episode_start": episodes["episode_start"],
                "episode_end": episodes["episode_end"],
                "episode_end_reported": episodes["episode_end_reported"],
                "episode_end_type": episodes["episode_end_type"],
                "new_episode_type": episodes["new_episode_type"],
                "exit_destination": episodes["exit_destination"],
                **{harmonised: episodes[national] for national, harmonised in NATIONAL_COLUMNS.items()},
                "icare_code": episodes["icare_code"],
                **{column: levels[column] for column in levels.columns},
                "legal_basis": episodes["legal_basis"],
                "provider_sector": episodes["provider_sector"],
                "purpose": episodes["purpose"],
                "duration_intent": episodes["duration_intent"],
                "regulated": episodes["regulated"],
                "concordance_rule": episodes["concordance_rule"],
                "repair_rule": episodes["repair_rule"],
                "overlaps_next": episodes["overlaps_next"],
                "file": episodes["file"],
                "sheet": episodes["sheet"],
                "row_number": episodes["row_number"],
                "classification_version": self.classification.version_id,
                "concordance_version": self.concordance.version_id,
            }
        )
        return out.sort_values(["source", "area_code", "child_key", "episode_start"], kind="stable")


class _Children:
    def __init__(self, table: pd.DataFrame, accepted_rows: pd.DataFrame) -> None:
        self.table = table
        self.accepted_rows = accepted_rows


class _Parts:
    """Collects superseded and rejected rows from each harmonisation step."""

    def __init__(self) -> None:
        self.superseded: list[pd.DataFrame] = []
        self.rejected: list[pd.DataFrame] = []

    def add_split(self, split: episode_rules.Split) -> None:
        if len(split.superseded):
            self.superseded.append(split.superseded)
        if len(split.rejected):
            self.rejected.append(
                quarantine.for_rows(split.rejected, None, "", split.rejected["message"]).assign(
                    rule=split.rejected["rule"].to_numpy()
                )
            )

    def quarantine(self, uasc_orphans: pd.DataFrame) -> pd.DataFrame:
        records = list(self.rejected)
        if len(uasc_orphans):
            records.append(
                quarantine.for_rows(
                    uasc_orphans,
                    "CHILD",
                    "missing_header",
                    "the UASC row's child has no valid header row in any return",
                    uasc_orphans["CHILD"],
                )
            )
        return quarantine.combine(records)

    def superseded_table(self) -> pd.DataFrame:
        columns = [
            "source",
            "collection_year",
            "area_code",
            "file",
            "sheet",
            "table_name",
            "row_number",
            "reason",
            "kept_file",
            "kept_sheet",
            "kept_row_number",
        ]
        if not self.superseded:
            return pd.DataFrame(columns=columns)
        return pd.concat(self.superseded)[columns]


def _end_type(end: pd.Series, exit_destination: pd.Series) -> pd.Series:
    """open (no end date), continues (ceased and a new episode began the same day) or exit."""
    kind = pd.Series("exit", index=end.index, dtype="str")
    kind[exit_destination.isna()] = "continues"
    kind[end.isna()] = "open"
    return kind


def _latest_year_by_area(files: list[InputFile]) -> pd.Series:
    years = pd.DataFrame(
        [(f.area_code, f.collection_year) for f in files if f.collection_year is not None],
        columns=["area_code", "collection_year"],
    )
    return years.groupby("area_code", dropna=False)["collection_year"].max()


def _empty_valid(table: str) -> pd.DataFrame:
    columns = list(load_source_spec(NAME).tables[table].columns)
    parsed = [schemas.parsed_date_column(c) for c in schemas.DATE_COLUMNS.get(table, [])]
    origin = ["source", "collection_year", "area_code", "file", "sheet", "row_number"]
    frame = pd.DataFrame({c: pd.Series(dtype="str") for c in [*columns, *origin]})
    for column in parsed:
        frame[column] = pd.Series(dtype="datetime64[ns]")
    frame["collection_year"] = frame["collection_year"].astype("int64")
    frame["row_number"] = frame["row_number"].astype("int64")
    return frame
