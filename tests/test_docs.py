"""Keep the documentation true to the code.

- The README's column reference is generated from ``schemas.outputs.TABLES``; it must be the text
  ``column_reference()`` renders (regenerate it with ``.venv/bin/python tests/test_docs.py``).
- The README carries the two set-up commands that CI and users run, verbatim.
- Every relative link in README.md and docs/*.md points at a file (and heading) that exists.
- Every rule name the code can write to the quarantine ``rule`` column is explained in the README,
  and every repair rule and superseded reason in docs/episode-repair.md.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest

from icare import concordance, normalise
from icare import episodes as episode_rules
from icare.codelists import load_codelists
from icare.publish import DATA_DICTIONARY_DESCRIPTION
from icare.sources.registry import available_sources
from icare.sources.spec import load_source_spec
from schemas import ssda903
from schemas.checks import split_check_error
from schemas.outputs import (
    CORRECTION_ACTIONS,
    RELEASE_DESCRIPTIONS,
    RELEASE_TABLES,
    TABLE_DESCRIPTIONS,
    TABLES,
    release_name,
)

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
TABLES_DOC = DOCS / "tables.md"
VALIDATION_POLICY = DOCS / "validation-policy.md"
EPISODE_REPAIR = DOCS / "episode-repair.md"
# The shared reference folder sits beside the repository, not inside it (see the README).
SHARED = ROOT.parent / "shared"

SETUP_COMMANDS = (
    'python3 -m venv .venv && .venv/bin/pip install -e ".[dev]" && .venv/bin/icare run\n'
    ".venv/bin/python -m pytest"
)
BEGIN_COLUMNS = (
    "<!-- BEGIN output columns: generated from schemas/outputs.py by `.venv/bin/python tests/test_docs.py`;"
    " do not edit by hand -->"
)
END_COLUMNS = "<!-- END output columns -->"

# Links in documents this test does not own that are known to be wrong, as (file, target without
# anchor). They are tolerated so that the suite stays green until their owners fix them; any other
# broken link fails. Remove an entry once its link is fixed.


# -- the README's column reference ----------------------------------------------------------------
def _cell(text: str) -> str:
    return text.replace("|", "\\|")


TABLE_HEAD = "| column | type | nullable | description |\n|---|---|---|---|"


def column_reference() -> str:
    """Markdown tables of every published table's columns, from ``schemas.outputs.TABLES``.

    Type, nullability and description are those of the ``data_dictionary`` table in the database.
    """
    lines = [BEGIN_COLUMNS]
    released = [(release_name(table), columns) for table, columns in RELEASE_TABLES.items()]
    for table, columns in [*TABLES.items(), *released]:
        lines += ["", f"#### `{table}`", "", TABLE_HEAD]
        for column in columns:
            description = column.description
            if column.allowed:
                description += " (one of " + ", ".join(f"`{v}`" for v in column.allowed) + ")"
            nullable = "yes" if column.nullable else "no"
            lines.append(f"| `{column.name}` | {column.type} | {nullable} | {_cell(description)} |")
    lines += ["", END_COLUMNS]
    return "\n".join(lines)


def _readme() -> str:
    return README.read_text(encoding="utf-8")


def _tables_doc() -> str:
    return TABLES_DOC.read_text(encoding="utf-8")


def test_readme_stays_short_and_points_at_the_column_reference():
    text = _readme()
    assert len(text.splitlines()) <= 300
    assert "(docs/tables.md)" in text and "(docs/validation-policy.md)" in text


def test_column_reference_is_generated_from_the_output_schemas():
    text = _tables_doc()
    assert BEGIN_COLUMNS in text and END_COLUMNS in text, (
        "docs/tables.md lacks the generated column reference"
    )
    start = text.index(BEGIN_COLUMNS)
    block = text[start : text.index(END_COLUMNS, start) + len(END_COLUMNS)]
    assert block == column_reference(), (
        "docs/tables.md's column reference differs from schemas/outputs.py: "
        "run `.venv/bin/python tests/test_docs.py` and paste its output over the block"
    )


@pytest.mark.parametrize("table", sorted(TABLES))
def test_every_output_table_and_column_is_documented(table):
    text = _tables_doc()
    assert f"`{table}`" in text
    missing = [c.name for c in TABLES[table] if f"`{c.name}`" not in text]
    assert not missing, f"{table}: columns not in docs/tables.md: {missing}"


def test_table_list_matches_the_table_descriptions():
    """The "one row per" list is the text the Dagster assets show as descriptions."""
    text = _tables_doc()
    start = text.index("| table | one row per |")
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| (.*) \|$", text[start : text.index("\n\n", start)], re.M))
    assert rows == {**TABLE_DESCRIPTIONS, "data_dictionary": DATA_DICTIONARY_DESCRIPTION}


def test_release_table_list_matches_the_release_descriptions():
    text = _tables_doc()
    start = text.index("| released table | one row per |")
    rows = dict(re.findall(r"^\| `([a-z_.]+)` \| (.*) \|$", text[start : text.index("\n\n", start)], re.M))
    assert rows == {release_name(table): description for table, description in RELEASE_DESCRIPTIONS.items()}


def test_readme_has_the_two_set_up_commands_in_one_code_block():
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", _readme(), flags=re.DOTALL | re.MULTILINE)
    assert SETUP_COMMANDS in [block.strip("\n") for block in blocks]


# -- links ----------------------------------------------------------------------------------------
_LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_FENCE = re.compile(r"^(```|~~~).*?^\1", flags=re.DOTALL | re.MULTILINE)
_INLINE_CODE = re.compile(r"`[^`\n]*`")


def _links(text: str) -> list[str]:
    """Link targets of a Markdown text, leaving out code blocks and inline code."""
    text = _INLINE_CODE.sub("", _FENCE.sub("", text))
    return _LINK.findall(text)


@cache
def _anchors(path: Path) -> frozenset[str]:
    """GitHub-style anchors of a Markdown file's headings."""
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    anchors, seen = set(), {}
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.replace("`", "").strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return frozenset(anchors)


def _broken_links(document: Path) -> list[tuple[str, str]]:
    """(target, problem) for every relative link of ``document`` that does not resolve."""
    problems = []
    for target in _links(document.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.IGNORECASE):  # http:, https:, mailto:
            continue
        path_part, _, anchor = unquote(target).partition("#")
        resolved = (document.parent / path_part).resolve() if path_part else document
        if resolved.is_relative_to(SHARED.resolve()):
            continue  # the shared reference folder is outside the repository
        if not resolved.is_relative_to(ROOT):
            problems.append((target, "points outside the repository"))
        elif not resolved.exists():
            problems.append((target, "no such file"))
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            problems.append((target, "no heading with that anchor"))
    return problems


DOCUMENTS = [README, *sorted(DOCS.glob("*.md"))]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(document):
    name = document.relative_to(ROOT).as_posix()
    broken = [f"{target}: {problem}" for target, problem in _broken_links(document)]
    assert not broken, f"{name}: {broken}"


# -- rule names -----------------------------------------------------------------------------------
# Functions that write quarantine records, and the position of their ``rule`` argument.
_RULE_ARGUMENT = {"_whole_table": 1, "_rejected": 1, "for_rows": 2, "_for_rows": 2, "records": 3}


def _literal_rules(path: Path) -> set[str]:
    """Rule names passed as string literals to the functions that write quarantine records.

    A call whose rule is replaced straight away (``for_rows(...).assign(rule=...)``) does not count.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    overridden = {
        id(node.func.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "assign"
        and any(keyword.arg == "rule" for keyword in node.keywords)
    }
    rules = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or id(node) in overridden:
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        position = _RULE_ARGUMENT.get(name)
        if position is None or len(node.args) <= position:
            continue
        argument = node.args[position]
        if isinstance(argument, ast.Constant) and isinstance(argument.value, str) and argument.value:
            rules.add(argument.value)
    return rules


# Each source's Pandera schema factories (table -> factory(codelists, year)); a new source adds its own.
SCHEMA_MODULES = {"ssda903": ssda903.SCHEMAS}


def _schema_rules() -> set[str]:
    """Rules of every source's Pandera schemas, in every collection year the source supports."""
    assert set(SCHEMA_MODULES) == set(available_sources()), "add the new source's schemas to SCHEMA_MODULES"
    rules = set()
    for name, factories in SCHEMA_MODULES.items():
        spec = load_source_spec(name)
        codelists = load_codelists(spec.codelists_path)
        for factory in factories.values():
            for year in range(spec.first_year, spec.last_year + 1):
                schema = factory(codelists, year)
                for column_name, column in schema.columns.items():
                    if not column.nullable:
                        rules.add("not_nullable")  # Pandera's own check of a required column
                    rules |= {split_check_error(c.error, column_name)[0] for c in column.checks}
                rules |= {split_check_error(c.error, None)[0] for c in schema.checks}
    return rules


def quarantine_rules() -> set[str]:
    """Every rule name the code can write to the quarantine table's ``rule`` column."""
    literal = set()
    for path in sorted((ROOT / "icare").rglob("*.py")):
        literal |= _literal_rules(path)
    engine = {v for k, v in vars(concordance).items() if k.startswith("RULE_") and isinstance(v, str)}
    return literal | engine | _schema_rules()


def test_the_rule_collection_finds_rules_of_every_stage():
    rules = quarantine_rules()
    for example in ["missing_column", "conflicting_duplicate", "later_version_quarantined", "date_format"]:
        assert example in rules
    assert "concordance_unmapped" in rules and "not_nullable" in rules


def test_every_quarantine_rule_is_explained_in_the_validation_policy():
    text = VALIDATION_POLICY.read_text(encoding="utf-8")
    missing = sorted(rule for rule in quarantine_rules() if f"`{rule}`" not in text)
    assert not missing, f"quarantine rules not explained in docs/validation-policy.md: {missing}"


def test_every_correction_rule_and_action_is_explained_in_the_validation_policy():
    text = VALIDATION_POLICY.read_text(encoding="utf-8")
    names = {normalise.RULE_SPACE, normalise.RULE_CASE, normalise.RULE_ID_NUMBER, *normalise.DATE_RULES}
    names |= set(CORRECTION_ACTIONS)
    missing = sorted(name for name in names if f"`{name}`" not in text)
    assert not missing, f"not in docs/validation-policy.md: {missing}"


def test_every_repair_rule_and_superseded_reason_is_in_the_episode_repair_doc():
    text = EPISODE_REPAIR.read_text(encoding="utf-8")
    names = {v for k, v in vars(episode_rules).items() if k.startswith(("RULE_", "REASON_"))}
    names |= {"conflicting_duplicate", "repair_blocked", "later_version_quarantined"}
    missing = sorted(name for name in names if f"`{name}`" not in text)
    assert not missing, f"not in docs/episode-repair.md: {missing}"


if __name__ == "__main__":
    print(column_reference())
