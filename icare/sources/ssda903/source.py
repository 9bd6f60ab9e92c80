"""England SSDA903: the reader and harmonisation behind the source interface.

What is England-specific lives here and in ``sources/ssda903/`` (reader spec, code lists,
concordance): which tables feed the harmonised data, how SEX and DOB are minimised, and which
national columns are kept as they were. Combining returns and repairing open episodes is generic
(``icare.episodes``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.compute as pc_arrow

from icare import corrections, quarantine
from icare import episodes as episode_rules
from icare.classification import Classification
from icare.codelists import load_codelists
from icare.concordance import Concordance, load_concordance
from icare.discovery import discover
from icare.extraction import ORIGIN_COLUMNS, ValuePolicy, extract
from icare.failure_policy import load_failure_policy
from icare.pseudonymise import KeyedIds, Pseudonymiser, key_categories
from icare.sources.base import Extraction, Harmonised, InputFile
from icare.sources.spec import SourceSpec, load_source_spec
from icare.vectorised import (
    TextDictionaries,
    categorical,
    concat_encoded,
    constant,
    decoded,
    encoded,
    in_appearance_order,
    looked_up,
    min_max_by,
    positions_in,
    text_isin,
    text_rank,
)
from schemas import ssda903 as schemas
from schemas.outputs import column_names, with_level_columns

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
# Origin columns of every table, dictionary-encoded while harmonising (see ``harmonise``).
_ENCODED_COLUMNS = ["source", "area_code", "file", "sheet"]
DIMENSION_TARGETS = ["legal_basis", "provider_sector", "purpose", "duration_intent", "regulated"]
EPISODE_COMPARE = ["DEC", "RNE", "LS", "CIN", "PLACE", "PLACE_PROVIDER", "REC", "REASON_PLACE_CHANGE", "URN"]
# The episode columns that ``_finish`` gathers into the harmonised episodes; the others are freed before.
# Text columns of the narrow episodes (decoded for the repair rules) that ``_finish`` publishes.
_NARROW_TEXT = ["episode_end_type", "new_episode_type", "exit_destination", "repair_rule"]
FINISH_COLUMNS = [
    "area_code",
    "collection_year",
    "child_key",
    schemas.parsed_date_column("DEC"),
    *NATIONAL_COLUMNS,
    "file",
    "sheet",
    "row_number",
]


class Ssda903Source:
    """Reads SSDA903 returns (CSV or XLSX, any mix of collection years) into harmonised episodes."""

    name = NAME

    def __init__(
        self,
        classification: Classification,
        pseudonymiser: Pseudonymiser,
        spec: SourceSpec | None = None,
        concordance: Concordance | None = None,
        *,
        strict: bool = False,
    ) -> None:
        """``strict``: no failure policy; every failing value quarantines its row (``--strict``)."""
        self.spec = spec or load_source_spec(NAME)
        self.classification = classification
        self.pseudonymiser = pseudonymiser
        self.codelists = load_codelists(self.spec.codelists_path)
        self.concordance = concordance or load_concordance(self.spec.concordance_dir, classification)
        self.values = None if strict else self._value_policy()

    def _value_policy(self) -> ValuePolicy:
        known = self.codelists.groupby("field")["code"].agg(frozenset).to_dict()
        return ValuePolicy(load_failure_policy(self.spec.failure_policy_path), known)

    # -- extraction -------------------------------------------------------------------------
    def discover(self, root: Path) -> list[InputFile]:
        return discover(root, self.spec)

    def extract(self, files: list[InputFile], progress: Callable[[str], None] | None = None) -> Extraction:
        schema_for = cache(self._schema)
        return extract(
            files,
            self.spec,
            schema_for,
            prepare=self._prepare,
            progress=progress,
            compact=self._compact,
            encode=self._encoded_text,
            values=self.values,
        )

    def _schema(self, table: str, year: int) -> pa.DataFrameSchema:
        return schemas.SCHEMAS[table](self.codelists, year, trimmed_ids=self.values is not None)

    @staticmethod
    def _prepare(
        table: str, frame: pd.DataFrame, dictionaries: TextDictionaries | None = None
    ) -> pd.DataFrame:
        """The dates parsed once per distinct text (from the columns' encodings, made once)."""
        encoded = dictionaries.get if dictionaries is not None else None
        return schemas.add_parsed_dates(frame, schemas.DATE_COLUMNS.get(table, []), encoded)

    def _compact(
        self, table: str, frame: pd.DataFrame, dictionaries: TextDictionaries | None = None
    ) -> pd.DataFrame:
        """A file's valid rows as they are held until harmonisation, at a fraction of their size.

        The identifiers that nothing reads are dropped (``seal`` would drop them), and every text
        column but the child id is dictionary-encoded (``encoded``): codes, dates as written and
        dates of birth repeat a few thousand values at most. Done after validation, which reads
        the text as written; harmonisation then finds the columns it encodes already encoded.
        ``dictionaries``: the columns of these same rows already encoded (for validation).
        """
        frame = frame.drop(columns=self._unread_identifiers(frame))
        return frame.assign(
            **{
                column: encoded(frame[column], dictionaries.get(column) if dictionaries else None)
                for column in self._encoded_text(table, frame)
            }
        )

    def _encoded_text(self, table: str, frame: pd.DataFrame) -> list[str]:
        """The text columns ``_compact`` encodes: all but the child id (as many values as children)
        and the identifiers nothing reads."""
        dropped = set(self._unread_identifiers(frame))
        return [
            c
            for c in frame.columns
            if c != "CHILD" and c not in dropped and isinstance(frame[c].dtype, pd.StringDtype)
        ]

    def _unread_identifiers(self, frame: pd.DataFrame) -> list[str]:
        """Identifier columns of ``frame`` (and their parsed dates) that nothing reads after validation:
        those the policy redacts, except DOB (its keyed digest is compared between returns)."""
        return [
            column
            for name, action in self.spec.identifier_policy.items()
            if action == "redact" and name != "DOB"
            for column in (name, schemas.parsed_date_column(name))
            if column in frame.columns
        ]

    def seal(self, extraction: Extraction) -> Extraction:
        """Pseudonymise the extraction before it goes anywhere (stored, combined or harmonised).

        CHILD becomes the child key; DOB, which harmonisation compares between returns and reduces
        to the month of birth, becomes a keyed digest and its parsed date the first of its month;
        the other identifier columns (UPN, MOTHER, MC_DOB, postcodes) are not used and are dropped.
        The quarantine records are redacted as the published quarantine is. Nothing that is left
        identifies a child without the key, and harmonising the sealed extraction gives the same
        tables as harmonising the raw one.
        """
        if extraction.pseudonymised:
            return extraction
        frames = [*extraction.valid.values(), *extraction.rejected.values()]
        keys = _child_keys(frames, self.pseudonymiser, encoded=len(extraction.valid))
        # Every table's DOB digested in one pass (each distinct date of birth hashed once).
        with_dob = [frame["DOB"] for frame in frames if "DOB" in frame.columns]
        digests = iter(_digested(with_dob, self.pseudonymiser))
        sealed = [
            self._sealed_frame(frame, key, next(digests) if "DOB" in frame.columns else None)
            for frame, key in zip(frames, keys, strict=True)
        ]
        valid = dict(zip(extraction.valid, sealed[: len(extraction.valid)], strict=True))
        rejected = dict(zip(extraction.rejected, sealed[len(extraction.valid) :], strict=True))
        child_keys = lambda area, child: self.pseudonymiser.child_keys(NAME, area, child)  # noqa: E731
        records = quarantine.redact(extraction.quarantine, self.spec.identifier_policy, child_keys)
        fixes = corrections.redact(extraction.corrections, self.spec.identifier_policy, child_keys)
        return replace(
            extraction,
            valid=valid,
            rejected=rejected,
            quarantine=records,
            corrections=fixes,
            pseudonymised=True,
        )

    def _sealed_frame(self, frame: pd.DataFrame, keys: pd.Series, dob: pd.Series | None) -> pd.DataFrame:
        dropped = self._unread_identifiers(frame)
        columns: dict[str, object] = {"CHILD": keys.array}
        if dob is not None:
            columns["DOB"] = dob.array
            parsed = schemas.parsed_date_column("DOB")
            if parsed in frame.columns:
                dates = frame[parsed].to_numpy()  # the first of the month, in the column's own unit
                columns[parsed] = dates.astype("datetime64[M]").astype(dates.dtype)
        return frame.drop(columns=dropped).assign(**columns)

    # -- harmonisation ----------------------------------------------------------------------
    def harmonise(self, extraction: Extraction) -> Harmonised:
        """Children from headers, then episodes: de-duplicate, attach the child, map, repair, flag.

        Each step works on a narrow frame (integer child id, dates, year, row id); the full records
        are only gathered once at the end, by row id. The text columns that are gathered (origin,
        national codes, child key) are dictionary-encoded first, so every gather moves integers,
        and are decoded once, in the tables handed back.
        """
        parts = _Parts()
        valid = extraction.take_valid()  # these frames are then the only references to the input
        tables = {
            name: (valid.pop(name) if name in valid else _empty_valid(name)).reset_index(drop=True)
            for name in ("header", "uasc", "episodes")
        }
        del valid
        ids = self._ids(extraction)
        keyed = ids.key_tables(NAME, [(t["area_code"], t["CHILD"]) for t in tables.values()], encoded=True)
        for (name, frame), (keys, ids) in zip(tables.items(), keyed, strict=True):
            for column in [*_ENCODED_COLUMNS, *self._encoded_columns(name)]:
                if column in frame.columns and isinstance(frame[column].dtype, pd.StringDtype):
                    frame[column] = encoded(frame[column])
            frame["table_name"] = constant(name, frame.index)
            frame["child_key"] = keys  # categorical over the sorted keys: its codes are the child ids
            frame["child_id"] = ids
            if extraction.pseudonymised:  # CHILD is then the child key: the same text, encoded
                frame["CHILD"] = keys
        del keyed, keys, ids
        episodes = tables["episodes"]
        children, header_rows = self._children(tables.pop("header"), tables.pop("uasc"), parts)
        narrow = self._narrow(episodes, extraction.rejected.get("episodes"))
        split = episode_rules.resolve_duplicates(narrow, episode_rules.EPISODE_KEY, episodes[EPISODE_COMPARE])
        parts.add(split, episodes)
        narrow = self._drop_older_versions_of_rejected(split.kept, episodes, extraction, parts)
        narrow = self._drop_children_without_header(narrow, episodes, children, extraction, parts)
        # Mapped after de-duplication: only the rows that stand for an episode are mapped, and a
        # latest row with an unmapped code is quarantined while its older versions stay superseded.
        mapped = self._map(episodes, narrow["row_id"].to_numpy(), parts)
        narrow = self._with_mapping(narrow, mapped)
        # A child with rows rejected in a return (at validation, as conflicting copies, or unmapped)
        # has its older open episodes held back rather than closed by a guess.
        rejected_here = np.concatenate(
            [split.rejected["row_id"].to_numpy(), mapped.index[mapped["_unmapped"].to_numpy()].to_numpy()]
        )
        blocked = pd.concat(
            [
                self._children_with_rejected_episodes(extraction, episodes),
                episodes[["child_id", "collection_year"]].iloc[rejected_here],
            ]
        )
        repaired = episode_rules.repair_open_episodes(
            narrow,
            blocked.drop_duplicates(),
            self.spec.year_start_month,
            self.spec.year_start_day,
        )
        parts.add(repaired, episodes)
        narrow = episode_rules.settle_unknown_end_reasons(
            repaired.kept, self._unknown_end_reason(episodes, repaired.kept)
        )
        narrow["overlaps_next"] = episode_rules.flag_overlaps(narrow)

        # Only the reconciliation reads these: left encoded, which it counts without decoding.
        accepted = concat_encoded(
            [_origin_rows(episodes, narrow["row_id"].to_numpy()), *header_rows.accepted]
        )
        parts.rejected.append(header_rows.uasc_rejected)
        # Done with every episode column but those ``_finish`` gathers: freed before the superseded
        # rows and the episodes' records are built.
        del tables
        episodes = episodes[FINISH_COLUMNS]
        # Superseded rows first: their gathers are done before the episodes' records exist (a lower peak).
        superseded = parts.superseded_table()
        return Harmonised(
            source=NAME,
            episodes=self._finish(episodes, mapped, narrow, children),
            children=children.table,
            quarantine=quarantine.combine(parts.rejected),
            superseded=superseded,
            accepted_rows=accepted,
            concordance=self.concordance.to_frame(),
            versions={"concordance": self.concordance.version_id},
        )

    @staticmethod
    def _unknown_end_reason(episodes: pd.DataFrame, narrow: pd.DataFrame) -> np.ndarray:
        """Rows of ``narrow`` whose return gave an end date but no reason that could be kept (the
        failure policy set REC unknown; a blank REC with an end date fails validation otherwise)."""
        rows = narrow["row_id"].to_numpy()
        reported_end = episodes[schemas.parsed_date_column("DEC")].notna().to_numpy()[rows]
        return (
            reported_end & episodes["REC"].isna().to_numpy()[rows] & narrow["repair_rule"].isna().to_numpy()
        )

    def _ids(self, extraction: Extraction) -> Pseudonymiser | KeyedIds:
        """Child keys from national ids, or from the keys a sealed extraction already holds."""
        return KeyedIds() if extraction.pseudonymised else self.pseudonymiser

    def _encoded_columns(self, table: str) -> list[str]:
        """Text columns of ``table`` gathered into the outputs or read by the concordance."""
        if table == "episodes":
            return [*NATIONAL_COLUMNS, *self.concordance.input_columns]
        return ["SEX", "ETHNIC"] if table == "header" else []

    def _children(
        self, header: pd.DataFrame, uasc: pd.DataFrame, parts: _Parts
    ) -> tuple[_Children, _HeaderRows]:
        """One row per child, and what the header and UASC rows leave for later steps (so the rows
        themselves are freed before the episodes are harmonised)."""
        children = self._children_table(header, uasc, parts)
        uasc_known = np.isin(uasc["child_id"].to_numpy(), children.ids)
        rows = _HeaderRows(
            accepted=[_origin_rows(header, children.row_ids), _origin_rows(uasc, np.flatnonzero(uasc_known))],
            uasc_rejected=_for_rows(
                uasc.loc[~uasc_known],
                "CHILD",
                "missing_header",
                "the UASC row's child has no valid header row in any return",
                "CHILD",
            ),
        )
        return children, rows

    def _children_table(self, header: pd.DataFrame, uasc: pd.DataFrame, parts: _Parts) -> _Children:
        """One row per child: the latest return's header wins; UASC in any return flags the child."""
        narrow = header[["child_id", "collection_year"]].assign(row_id=np.arange(len(header)))
        split = episode_rules.resolve_duplicates(
            narrow, episode_rules.CHILD, header[["SEX", "DOB", "ETHNIC"]]
        )
        parts.add(split, header)
        row_ids = split.kept["row_id"].to_numpy()
        # Published by area and child key: sorted on integers (area rank, child id, which follows the
        # key's order) before the one gather of the header rows.
        area_rank = text_rank(header["area_code"])
        ordered = row_ids[np.lexsort((header["child_id"].to_numpy()[row_ids], area_rank[row_ids]))]
        latest = header[
            [
                "area_code",
                "child_key",
                "child_id",
                "SEX",
                "ETHNIC",
                "file",
                "sheet",
                "row_number",
                schemas.parsed_date_column("DOB"),
            ]
        ].iloc[ordered]
        first_year, last_year = _year_span(
            narrow["child_id"].to_numpy(), narrow["collection_year"].to_numpy()
        )
        dob = latest[schemas.parsed_date_column("DOB")]
        sex = decoded(latest["SEX"]).map(self.spec.sex_codes)
        # What each episode repeats of its child, kept encoded for the episodes' gather.
        attributes = pd.DataFrame(
            {
                "sex": encoded(sex).array,
                "birth_month": dob.dt.to_period("M").dt.to_timestamp().array,
                "ethnicity": latest["ETHNIC"].array,
                "uasc": np.isin(latest["child_id"].to_numpy(), uasc["child_id"].to_numpy()),
            },
            copy=False,
        )
        # Text left encoded (categoricals) until the write: the table is held through the statistics.
        index = pd.RangeIndex(len(latest))
        table = pd.DataFrame(
            {
                "source": constant(NAME, index),
                "country": constant(self.spec.country, index),
                "area_code": latest["area_code"].array,
                "child_key": latest["child_key"].array,
                "sex": attributes["sex"].array,
                "birth_month": attributes["birth_month"].array,
                "ethnicity": latest["ETHNIC"].array,
                "uasc": attributes["uasc"].to_numpy(),
                "first_collection_year": first_year[latest["child_id"].to_numpy()],
                "last_collection_year": last_year[latest["child_id"].to_numpy()],
                "file": latest["file"].array,
                "sheet": latest["sheet"].array,
                "row_number": latest["row_number"].array,
            },
            index=index,
            copy=False,
        )
        return _Children(
            table=table, attributes=attributes, ids=latest["child_id"].to_numpy(), row_ids=row_ids
        )

    def _map(self, episodes: pd.DataFrame, row_ids: np.ndarray, parts: _Parts) -> pd.DataFrame:
        """National codes onto ICare and the dimensions; an unmapped code is quarantined, never defaulted.

        Only the rows ``row_ids`` and the columns the concordance reads are gathered for mapping.
        """
        read = [*self.concordance.input_columns, "collection_year"]
        result = self.concordance.apply(
            episodes[read].iloc[row_ids], year_column="collection_year", encoded=True
        )
        values = result.values
        if len(result.unmapped):
            unmapped = result.unmapped
            rows = episodes.loc[unmapped["index"]]
            parts.rejected.append(
                quarantine.for_rows(
                    rows, unmapped["column"], unmapped["rule"], unmapped["message"], unmapped["value"]
                )
            )
            values = values.assign(_unmapped=values.index.isin(unmapped["index"]))
        else:
            values = values.assign(_unmapped=False)
        return values

    def _narrow(self, episodes: pd.DataFrame, rejected: pd.DataFrame | None) -> pd.DataFrame:
        """What de-duplication and repair need: integer child id, dates, years and row id."""
        latest_year = _latest_year_by_area(episodes, rejected)
        start = episodes[schemas.parsed_date_column("DECOM")]
        end = episodes[schemas.parsed_date_column("DEC")]
        return pd.DataFrame(
            {
                "child_id": episodes["child_id"],
                "episode_start": start,
                "episode_end": end,
                # a zero-length episode and the next one starting that day are two episodes
                episode_rules.LASTS_PAST_START: episode_rules.lasts_past_start(start, end),
                "collection_year": episodes["collection_year"],
                "latest_collection_year": _per_area(episodes["area_code"], latest_year),
                "row_id": np.arange(len(episodes)),
            },
            copy=False,  # the columns are not changed in place: no copy of each, no block merge
        )

    @staticmethod
    def _with_mapping(narrow: pd.DataFrame, mapped: pd.DataFrame) -> pd.DataFrame:
        """Keep the rows that mapped and add what the repair rules read from the mapping.

        ``mapped`` was computed on ``narrow``'s rows in the same order, so the two align by position;
        ``mapped_at`` keeps each row's position in ``mapped`` through the reordering that follows.
        """
        keep = ~mapped["_unmapped"].to_numpy()
        narrow = narrow.assign(mapped_at=np.arange(len(narrow)))
        if not keep.all():  # usually every row mapped: no gathers
            narrow, mapped = narrow.loc[keep], mapped.loc[keep]
        # Arrays, not NumPy: text stays in Arrow rather than becoming Python objects and back.
        exit_destination = decoded(mapped["exit_destination"]).set_axis(narrow.index)
        return narrow.assign(
            new_episode_type=decoded(mapped["new_episode_type"]).array,
            exit_destination=exit_destination.array,
            episode_end_type=_end_type(narrow["episode_end"], exit_destination),
        )

    def _drop_older_versions_of_rejected(
        self, narrow: pd.DataFrame, episodes: pd.DataFrame, extraction: Extraction, parts: _Parts
    ) -> pd.DataFrame:
        """An older return's row must not stand in for a later row of the same episode that failed."""
        rejected = extraction.rejected.get("episodes")
        if rejected is None or rejected.empty:
            return narrow
        keys = self._ids(extraction).child_keys(NAME, rejected["area_code"], rejected["CHILD"])
        later = pd.DataFrame(
            {
                "child_id": _child_ids_of(keys, episodes),
                "episode_start": rejected[schemas.parsed_date_column("DECOM")].array,
                "rejected_year": rejected["collection_year"].array,
                "rejected_at": (rejected["file"] + " row " + rejected["row_number"].astype(str)).array,
            }
        ).dropna(subset=["episode_start"])
        pairs = narrow.merge(later[later["child_id"] >= 0], on=episode_rules.EPISODE)
        pairs = pairs[pairs["rejected_year"] > pairs["collection_year"]].drop_duplicates("row_id")
        if pairs.empty:
            return narrow
        rows = episodes.iloc[pairs["row_id"].to_numpy()]
        parts.rejected.append(
            quarantine.for_rows(
                rows,
                "DECOM",
                "later_version_quarantined",
                "a later return's row for this episode ("
                + pairs["rejected_at"].astype(str)
                + ") is quarantined; fix it rather than fall back on this older row",
                rows["DECOM"],
            )
        )
        return narrow[~narrow["row_id"].isin(pairs["row_id"])]

    def _drop_children_without_header(
        self,
        narrow: pd.DataFrame,
        episodes: pd.DataFrame,
        children: _Children,
        extraction: Extraction,
        parts: _Parts,
    ) -> pd.DataFrame:
        """Sex and month of birth come from the child's header; an episode without one is quarantined."""
        known = np.isin(narrow["child_id"].to_numpy(), children.ids)
        if known.all():
            return narrow
        orphans = episodes.iloc[narrow.loc[~known, "row_id"].to_numpy()]
        message = pd.Series(
            "the child has no header row (CHILD, SEX, DOB) in any return, so sex and age are unknown",
            index=orphans.index,
        )
        rejected_header = extraction.rejected.get("header")
        if rejected_header is not None and len(rejected_header):
            bad_keys = self._ids(extraction).child_keys(
                NAME, rejected_header["area_code"], rejected_header["CHILD"]
            )
            had_bad_header = text_isin(decoded(orphans["child_key"]), bad_keys)
            message[had_bad_header] = "the child's header row is quarantined; fix it and run again"
        parts.rejected.append(_for_rows(orphans, "CHILD", "missing_header", message, "CHILD"))
        return narrow.loc[known]

    def _children_with_rejected_episodes(
        self, extraction: Extraction, episodes: pd.DataFrame
    ) -> pd.DataFrame:
        rejected = extraction.rejected.get("episodes")
        if rejected is None or rejected.empty:
            return pd.DataFrame(
                {"child_id": pd.Series(dtype="int64"), "collection_year": pd.Series(dtype="int64")}
            )
        keys = self._ids(extraction).child_keys(NAME, rejected["area_code"], rejected["CHILD"])
        blocked = pd.DataFrame(
            {
                "child_id": _child_ids_of(keys, episodes),
                "collection_year": rejected["collection_year"].array,
            }
        )
        return blocked[blocked["child_id"] >= 0].drop_duplicates()

    def _finish(
        self, episodes: pd.DataFrame, mapped: pd.DataFrame, narrow: pd.DataFrame, children: _Children
    ) -> pd.DataFrame:
        """Gather the full records of the kept episodes once, in a stable order.

        Sorted on integers: the area's rank and ``child_id`` (ids follow the order of the child
        keys) instead of the text columns. Only the columns published are gathered, by position.
        Text stays dictionary-encoded (categoricals) in the table handed back: it is held until the
        write, which decodes it (``schemas.outputs.to_arrow``), at about a third of the memory.
        """
        row_ids = narrow["row_id"].to_numpy()
        area_rank = text_rank(episodes["area_code"])
        keys = [*episode_rules.EPISODE_KEY, "collection_year"]
        order = episode_rules.stable_order(
            narrow[keys].assign(area_rank=area_rank[row_ids]), ["area_rank", *keys]
        )
        # Text encoded before the rows are put in order (a gather of codes, not of text), its
        # categories then listed as the ordered rows first use them, as encoding them afterwards would.
        narrow = narrow.assign(**{c: encoded(narrow[c]) for c in _NARROW_TEXT}).iloc[order]
        rows = row_ids[order]
        wide = episodes[FINISH_COLUMNS].iloc[rows]
        values = mapped[["icare_code", *DIMENSION_TARGETS, "concordance_rule"]].iloc[
            narrow["mapped_at"].to_numpy()
        ]
        child = children.attributes.iloc[children.position_of(narrow["child_id"].to_numpy())]
        # The levels of each distinct code, then one gather by the codes.
        codes = values["icare_code"].cat
        per_code = with_level_columns(
            self.classification.level_columns(pd.Series(codes.categories)), "icare_level"
        )
        index = pd.RangeIndex(len(narrow))
        levels = {c: _spread(per_code[c], codes.codes.to_numpy(), index) for c in per_code.columns}
        out = pd.DataFrame(
            {
                "source": constant(NAME, index),
                "country": constant(self.spec.country, index),
                "area_code": wide["area_code"].array,
                "collection_year": wide["collection_year"].array,
                "child_key": wide["child_key"].array,
                "sex": child["sex"].array,
                "birth_month": child["birth_month"].array,
                "ethnicity": child["ethnicity"].array,
                "uasc": child["uasc"].array,
                "episode_start": narrow["episode_start"].array,
                "episode_end": narrow["episode_end"].array,
                "episode_end_reported": wide[schemas.parsed_date_column("DEC")].array,
                **{c: in_appearance_order(narrow[c]).array for c in ("episode_end_type", "new_episode_type")},
                "exit_destination": in_appearance_order(narrow["exit_destination"]).array,
                **{harmonised: wide[national].array for national, harmonised in NATIONAL_COLUMNS.items()},
                "icare_code": values["icare_code"].array,
                **{column: level.array for column, level in levels.items()},
                **{target: values[target].array for target in DIMENSION_TARGETS},
                "concordance_rule": values["concordance_rule"].array,
                "repair_rule": in_appearance_order(narrow["repair_rule"]).array,
                "overlaps_next": narrow["overlaps_next"].array,
                "file": wide["file"].array,
                "sheet": wide["sheet"].array,
                "row_number": wide["row_number"].array,
                "classification_version": constant(self.classification.version_id, index),
                "concordance_version": constant(self.concordance.version_id, index),
            },
            index=index,
            copy=False,
        )
        return out


def _child_keys(
    frames: list[pd.DataFrame], pseudonymiser: Pseudonymiser, encoded: int = 0
) -> list[pd.Series]:
    """The child key of each row of ``frames``; those of the first ``encoded`` frames (the valid
    rows, which harmonisation numbers) as one categorical over the keys they use in key order, the
    others as text.

    Keyed from the distinct (area, child id) pairs of all the frames, found on integers (the area's
    position among the areas and the child id's among the ids), and spread back to the rows: a
    child's rows repeat one pair, so the composite texts hashed are a fraction of the rows (at
    5,000,000 episode rows about 0.4 GB less held while sealing). Each pair is hashed once. The
    categorical's codes are the child ids harmonisation gives, so it does not look for the distinct
    keys again (``KeyedIds.key_tables``), and a row holds a 4-byte code instead of a 32-digit key
    and its 8-byte offset.
    """
    area, child, rows = _distinct_pairs([f["area_code"] for f in frames], [f["CHILD"] for f in frames])
    keys = pseudonymiser.pair_keys(NAME, area, child)
    used = np.zeros(len(keys), dtype=bool)
    for pairs in rows[:encoded]:
        used[pairs] = True
    dtype, codes = key_categories(keys, used)
    return [
        categorical(codes[pairs], dtype, frame.index)
        if position < encoded
        else keys.take(pairs).to_pandas().set_axis(frame.index)
        for position, (frame, pairs) in enumerate(zip(frames, rows, strict=True))
    ]


def _distinct_pairs(
    areas: list[pd.Series], children: list[pd.Series]
) -> tuple[pa_arrow.Array, pa_arrow.Array, list[np.ndarray]]:
    """The distinct (area, child id) pairs of several columns' rows, missing values kept, and each
    row's pair (one array per column).

    The child ids of every column are dictionary-encoded in one pass (a missing id is a value of its
    own). Nearly every id belongs to one area, so pair k is id k in the area of its first row, and
    only the rows of an id seen in another area are numbered after them, on integers (area position
    times the number of ids plus the id's position). Factorising those integers for every row took
    0.52 s of CPU at 5,000,000 episode rows (8.2 million rows of all tables); the whole function now
    takes 1.2-1.4 s there against 1.5-2.1 s, most of it Arrow's encoding of the ids.
    """
    area_codes, area_names = _area_positions(areas)
    ids = pa_arrow.chunked_array(
        [chunk for child in children for chunk in _text_chunks(child)], type=pa_arrow.large_string()
    ).combine_chunks()
    dictionary = pc_arrow.dictionary_encode(ids, null_encoding="encode")
    id_count = len(dictionary.dictionary)
    id_codes = dictionary.indices.to_numpy(zero_copy_only=False).astype("int64")
    area_code = np.concatenate([np.zeros(0, dtype="int64"), *area_codes])  # no columns: no rows
    first_area = area_code[_first_occurrences(id_codes)]  # ids are numbered as rows first use them
    rows = id_codes.copy()
    other = np.flatnonzero(area_code != first_area[id_codes])
    other_codes, other_pairs = pd.factorize(area_code[other] * id_count + id_codes[other])
    rows[other] = other_codes + id_count
    area_of = np.concatenate([first_area, other_pairs // id_count])
    child_of = np.concatenate([np.arange(id_count), other_pairs % id_count])
    area_text = pa_arrow.array(area_names, type=pa_arrow.large_string())
    ends = np.cumsum([len(codes) for codes in area_codes])
    return (
        area_text.take(pa_arrow.array(area_of, mask=area_of < 0)),
        dictionary.dictionary.take(pa_arrow.array(child_of)),
        [rows[end - len(codes) : end] for codes, end in zip(area_codes, ends, strict=True)],
    )


def _first_occurrences(codes: np.ndarray) -> np.ndarray:
    """The row of each code's first use, for codes numbered in order of first use (as Arrow's
    dictionary encoding numbers them): a code's first row is where it exceeds every code before."""
    if not len(codes):
        return np.zeros(0, dtype="int64")
    first = np.empty(len(codes), dtype=bool)
    first[0] = True
    first[1:] = codes[1:] > np.maximum.accumulate(codes)[:-1]
    return np.flatnonzero(first)


def _area_positions(areas: list[pd.Series]) -> tuple[list[np.ndarray], list[str]]:
    """Each row's position among the distinct areas of all the columns (-1 when missing), and the
    areas: each column's few distinct areas (a categorical's categories, read from its codes without
    a hash pass) are numbered in one list."""
    names: dict[str, int] = {}
    codes = []
    for area in areas:
        if _is_encoded(area):
            local, distinct = area.cat.codes.to_numpy(), area.cat.categories
        else:
            local, distinct = pd.factorize(area, use_na_sentinel=True)
        position = np.array([names.setdefault(str(name), len(names)) for name in distinct], dtype="int64")
        codes.append(np.append(position, -1)[local])
    return codes, list(names)


def _text_chunks(values: pd.Series) -> list[pa_arrow.Array]:
    """The Arrow text arrays a column is made of (no copy for an Arrow-backed ``str`` column)."""
    array = pa_arrow.array(values, type=pa_arrow.large_string(), from_pandas=True)
    return array.chunks if isinstance(array, pa_arrow.ChunkedArray) else [array]


def _digested(columns: list[pd.Series], pseudonymiser: Pseudonymiser) -> list[pd.Series]:
    """Each column's keyed digests, every distinct value of them all hashed once. A categorical
    column stays one: its categories are digested (distinct values have distinct digests)."""
    distinct = [pd.Series(c.cat.categories) if _is_encoded(c) else c for c in columns]
    hashed = pseudonymiser.values_of(distinct)
    return [
        categorical(c.cat.codes.to_numpy(), pa_arrow.array(h), c.index) if _is_encoded(c) else h
        for c, h in zip(columns, hashed, strict=True)
    ]


def _is_encoded(column: pd.Series) -> bool:
    return isinstance(column.dtype, pd.CategoricalDtype)


@dataclass
class _Children:
    table: pd.DataFrame
    attributes: pd.DataFrame  # sex, birth_month, ethnicity, uasc of each row of ``table`` (encoded)
    ids: np.ndarray  # child_id of each row of ``table``
    row_ids: np.ndarray  # header rows that were used

    def position_of(self, child_ids: np.ndarray) -> np.ndarray:
        """The row of ``table`` of each child id (every id given has one): a lookup in a dense array."""
        positions = np.full(int(self.ids.max()) + 1 if len(self.ids) else 0, -1, dtype="int64")
        positions[self.ids] = np.arange(len(self.ids))
        return positions[child_ids]


@dataclass
class _HeaderRows:
    """What harmonising the episodes still needs of the header and UASC rows."""

    accepted: list[pd.DataFrame]  # origin of the header and UASC rows used (``_origin_rows``)
    uasc_rejected: pd.DataFrame  # quarantine records of UASC rows whose child has no header


def _year_span(child_ids: np.ndarray, years: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last collection year of each child id (dense arrays indexed by id)."""
    return min_max_by(child_ids, years, int(child_ids.max()) + 1 if len(child_ids) else 0)


def _child_ids_of(keys: pd.Series, reference: pd.DataFrame) -> np.ndarray:
    """The integer child id of each child key, as ``reference`` assigned it (-1 when not there).

    ``reference["child_key"]`` is a categorical over every child key harmonised, in the order of
    the ids: a key's position among its categories is its id.
    """
    every_key = reference["child_key"].cat.categories
    ids = positions_in(keys, pa_arrow.array(every_key, type=pa_arrow.large_string(), from_pandas=True))
    present = np.zeros(len(every_key) + 1, dtype=bool)  # last slot: keys not found (-1)
    present[reference["child_id"].to_numpy()] = True
    return np.where(present[ids], ids, -1)


def _spread(per_code: pd.Series, codes: np.ndarray, index: pd.Index) -> pd.Series:
    """``per_code`` (text per category, values may repeat) at each row's category code, encoded:
    a categorical over its distinct values (-1, and a missing value, give missing)."""
    value_codes, distinct = pd.factorize(per_code, use_na_sentinel=True)
    return categorical(np.append(value_codes, -1)[codes], list(distinct), index)


def _origin_rows(frame: pd.DataFrame, row_ids: np.ndarray) -> pd.DataFrame:
    return frame[["file", "sheet", "row_number", "table_name"]].iloc[row_ids]


def _for_rows(rows: pd.DataFrame, column: str, rule: str, message, value_column: str) -> pd.DataFrame:
    return quarantine.for_rows(rows, column, rule, message, rows[value_column])


class _Parts:
    """Collects superseded and rejected rows from each harmonisation step."""

    def __init__(self) -> None:
        self.superseded: list[pd.DataFrame] = []
        self.rejected: list[pd.DataFrame] = []

    def add(self, split: episode_rules.Split, frame: pd.DataFrame) -> None:
        """Record a step's superseded and rejected rows, with their origin looked up by row id."""
        if len(split.superseded):
            rows = frame[[*ORIGIN_COLUMNS, "table_name"]].iloc[split.superseded["row_id"].to_numpy()]
            kept = frame[["file", "sheet", "row_number"]].iloc[split.superseded["kept_row_id"].to_numpy()]
            self.superseded.append(  # still encoded: sorted, then decoded, in ``superseded_table``
                pd.DataFrame(
                    {
                        **{c: rows[c].array for c in ORIGIN_COLUMNS},
                        "table_name": rows["table_name"].array,
                        "reason": encoded(split.superseded["reason"]).array,
                        "kept_file": kept["file"].array,
                        "kept_sheet": kept["sheet"].array,
                        "kept_row_number": kept["row_number"].array,
                    }
                )
            )
        if len(split.rejected):
            rows = frame.iloc[split.rejected["row_id"].to_numpy()]
            self.rejected.append(
                quarantine.for_rows(rows, None, split.rejected["rule"], split.rejected["message"])
            )

    def superseded_table(self) -> pd.DataFrame:
        """The superseded rows in their published order (source, file, sheet, row number).

        Sorted while the text is still encoded, on the ranks of the few distinct values, so the
        rows are gathered as integers and the published table needs no sort of its own. The text
        stays encoded (categoricals) until the write: the table is held through the statistics.
        """
        columns = column_names("superseded")
        if not self.superseded:
            return pd.DataFrame(columns=columns)
        table = concat_encoded(self.superseded)
        self.superseded = []  # held once, not twice
        ranks = pd.DataFrame(
            {
                "source": text_rank(table["source"]),
                "file": text_rank(table["file"]),
                "sheet": text_rank(table["sheet"]),
                "row_number": table["row_number"].to_numpy(),
            }
        )
        order = episode_rules.stable_order(ranks, list(ranks.columns))
        return table.iloc[order].reset_index(drop=True)[columns]  # decoded when written


def _end_type(end: pd.Series, exit_destination: pd.Series) -> pd.Series:
    """open (no end date), continues (ceased and a new episode began the same day) or exit.

    Chosen as a position among the three texts and looked up once (setting text by mask copies it).
    """
    kind = np.where(end.isna().to_numpy(), 2, np.where(exit_destination.isna().to_numpy(), 1, 0))
    return looked_up(_END_TYPES, kind, end.index)


_END_TYPES = ["exit", "continues", "open"]


def _per_area(area: pd.Series, values: pd.Series) -> np.ndarray:
    """``values`` (indexed by area, "" for none) looked up for each row's area, via a few codes."""
    codes, areas = _area_codes(area)
    per_area = values.reindex(areas).to_numpy(dtype="int64")
    return np.append(per_area, values.get("", 0))[codes]  # code -1: no area


def _area_codes(area: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Each row's position among the distinct areas (-1 when missing), read from the categorical's
    codes when the column is encoded."""
    if isinstance(area.dtype, pd.CategoricalDtype):
        return area.cat.codes.to_numpy(), list(area.cat.categories)
    codes, areas = pd.factorize(area, use_na_sentinel=True)
    return codes, list(areas)


def _latest_year_by_area(episodes: pd.DataFrame, rejected: pd.DataFrame | None) -> pd.Series:
    """Latest collection year with episode rows per area ("" for files with no area in their path).

    Rows that failed validation count (the return exists and its children are known, so their own
    open episodes are blocked rather than repaired), but a file that is not an episodes table, or
    an episodes table rejected whole, does not: nobody can tell who is in it.
    """
    frames = [_area_years(episodes)]
    if rejected is not None and len(rejected):
        frames.append(_area_years(rejected))
    years = pd.concat(frames, ignore_index=True)
    return years.groupby("area_code")["collection_year"].max()


def _area_years(frame: pd.DataFrame) -> pd.DataFrame:
    """The distinct (area, collection year) pairs of ``frame`` ("" for no area), found on integers."""
    codes, areas = _area_codes(frame["area_code"])
    area, year = _distinct_int_pairs(codes.astype("int64"), frame["collection_year"].to_numpy())
    return pd.DataFrame({"area_code": np.asarray([*areas, ""], dtype=object)[area], "collection_year": year})


def _distinct_int_pairs(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (first, second) pairs of two integer columns, in sorted order.

    Pairs of a few areas and years are counted in a small table (one pass, no sort and no hash of
    a million rows, as ``drop_duplicates`` did); wide ranges are left to ``np.unique``.
    """
    if not len(first):
        return first, second
    low, width = int(first.min()), int(second.max()) - int(second.min()) + 1
    cells = (int(first.max()) - low + 1) * width
    if cells > _PAIR_CELLS:
        pairs = np.unique(np.stack([first, second], axis=1), axis=0)
        return pairs[:, 0], pairs[:, 1]
    present = np.flatnonzero(np.bincount((first - low) * width + (second - second.min()), minlength=cells))
    return present // width + low, present % width + second.min()


_PAIR_CELLS = 1_000_000  # largest table of (area, year) cells counted by ``_distinct_int_pairs``


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
