"""Study files that parse but would mislead or harm: duplicate keys, deep nesting, invisible or
reordering characters, infinite numbers, deep JSON. Each is refused with a message naming the
field (and the line where YAML has one), never read silently or as an internal error."""

import json
import subprocess
import sys

import pytest

from doe import limits
from doe.errors import DoeError, StudyError
from doe.study import Factor, Response, Study
from doe.tables import factors_table, responses_table, study_from_tables
from tests.conftest import ROOT

BASE = """schema: 1
name: s
factors:
  - {name: Agitation, kind: continuous, low: 30, high: 90, units: rpm}
  - {name: Medium, kind: categorical, levels: [FBS, hPL]}
responses:
  - name: Viability
    goal: maximize
    lower: 80
"""


def test_the_base_study_reads():
    assert Study.from_yaml(BASE).response("Viability").lower == 80


def test_a_duplicate_key_is_refused_naming_the_key_and_lines():
    text = BASE + "    lower: 10\n"  # today YAML keeps the last: the spec silently becomes 10
    with pytest.raises(StudyError) as exc:
        Study.from_yaml(text)
    msg = str(exc.value)
    assert "'lower' is given twice" in msg and "lines 9 and 10" in msg, msg


def test_a_duplicate_top_level_key_is_refused():
    with pytest.raises(StudyError, match="'name' is given twice"):
        Study.from_yaml(BASE + "name: other\n")


def test_a_duplicate_key_in_a_flow_mapping_is_refused():
    text = BASE.replace("low: 30, high: 90", "low: 30, high: 90, low: 10")
    with pytest.raises(StudyError, match="'low' is given twice .*line"):
        Study.from_yaml(text)


@pytest.mark.parametrize("depth", [25, 5_000])
def test_deep_nesting_is_refused_quickly(depth):
    text = "schema: 1\nname: s\nfactors: " + "[" * depth + "]" * depth + "\n"
    with pytest.raises(StudyError, match=f"nested more than {limits.MAX_NESTING} levels"):
        Study.from_yaml(text)


def test_deep_block_nesting_is_refused():
    text = "name: s\nfactors:\n" + "".join("  " * i + "- \n" for i in range(1, 40)) + "  " * 40 + "- x\n"
    with pytest.raises(StudyError, match="nested more than"):
        Study.from_yaml(text)


@pytest.mark.parametrize("where, text, field", [
    ("factor name", BASE.replace("name: Agitation", 'name: "Agi\\0tation"'), "The factor name"),
    ("factor name", BASE.replace("name: Agitation", 'name: "Agitation\\u202e"'), "The factor name"),
    ("response name", BASE.replace("name: Viability", 'name: "Via\\u2066bility"'), "The response name"),
    ("level", BASE.replace("[FBS, hPL]", '[FBS, "hPL\\u202d"]'), "A level of factor 'Medium'"),
    ("level", BASE.replace("[FBS, hPL]", '[FBS, "hPL\\x07"]'), "A level of factor 'Medium'"),
    ("units", BASE.replace("units: rpm", 'units: "rpm\\u2069"'), "The units of factor 'Agitation'"),
    ("study name", BASE.replace("name: s\n", 'name: "s\\u202a"\n', 1), "The study name"),
    ("block column", BASE + 'blocks: "Day\\x1b"\n', "The block column name"),
])
def test_control_and_bidi_characters_are_refused_naming_the_field(where, text, field):
    with pytest.raises(StudyError) as exc:
        Study.from_yaml(text)
    msg = str(exc.value)
    assert msg.startswith(field) and ("control character" in msg or "bidirectional" in msg
                                      or "NUL" in msg), msg
    assert "\u202e" not in msg and "\x00" not in msg  # the message itself shows '?' in its place


def test_line_breaks_in_a_description_are_fine():
    study = Study.from_yaml(BASE + 'description: "two\\nlines\\tand a tab"\n')
    assert "\n" in study.description


def test_bidi_in_a_description_is_refused():
    with pytest.raises(StudyError, match="The study description .*bidirectional"):
        Study.from_yaml(BASE + 'description: "abc\\u202e"\n')


@pytest.mark.parametrize("text, fragment", [
    (BASE.replace("lower: 80", "lower: 1e309"), "finite"),
    (BASE.replace("lower: 80", "lower: 1.0e+309"), "finite"),
    (BASE.replace("lower: 80", "lower: .nan"), "finite"),
    (BASE.replace("high: 90", "high: .inf"), "finite"),
    (BASE.replace("{name: Medium, kind: categorical, levels: [FBS, hPL]}",
                  "{name: Dose, kind: discrete, levels: [1, 1e309]}"), "finite"),
    (BASE.replace("{name: Medium, kind: categorical, levels: [FBS, hPL]}",
                  "{name: Dose, kind: discrete, levels: [1, .nan, 3]}"), "finite"),
])
def test_infinite_and_nan_numbers_are_refused(text, fragment):
    with pytest.raises(StudyError, match=fragment):
        Study.from_yaml(text)


def test_infinite_numbers_are_refused_when_a_study_is_built_in_code():
    with pytest.raises(StudyError, match="Factor 'A' high must be a finite number"):
        Study("s", [Factor("A", "continuous", 0, float("inf"))])
    with pytest.raises(StudyError, match="Response 'Y' upper must be a finite number"):
        Study("s", [Factor("A", "continuous", 0, 1)], [Response("Y", upper=float("nan"))])


def test_the_study_editor_tables_give_the_same_messages():
    study = Study.from_yaml(BASE)
    factors, responses = factors_table(study), responses_table(study)
    factors.loc[0, "name"] = "Agitation\u202e"
    with pytest.raises(StudyError, match="The factor name .*bidirectional"):
        study_from_tables("s", factors, responses)
    factors, responses = factors_table(study), responses_table(study)
    factors.loc[1, "levels"] = "FBS; hPL\x00"
    with pytest.raises(StudyError, match="A level of factor 'Medium' .*NUL"):
        study_from_tables("s", factors, responses)


def test_deep_json_is_refused_with_a_message():
    deep = "[" * 100_000 + "]" * 100_000  # json.loads alone raises RecursionError on this
    with pytest.raises(DoeError, match="nested too deeply|nested"):
        limits.load_json(deep, "The study in the bundle")
    with pytest.raises(DoeError, match="nested 21 levels deep"):
        limits.load_json("[" * 21 + "]" * 21, "The study in the bundle")
    assert limits.load_json(json.dumps(Study.from_yaml(BASE).to_dict()), "s")["name"] == "s"
    with pytest.raises(DoeError, match="not a finite number"):
        limits.load_json('{"lower": Infinity}', "The study in the bundle")


def test_cli_validate_gives_the_message_not_an_internal_error(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text(BASE + "    lower: 10\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "doe", "validate", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "'lower' is given twice" in proc.stderr and "internal error" not in proc.stderr
