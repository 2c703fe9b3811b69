"""Designs as records (issue 14, part A): names, the current design, deletion, the design of each data
version, and the report naming the design the analysed data were run on (not the newest one saved)."""

from __future__ import annotations

import json
import runpy

import pandas as pd
import pytest
from sqlalchemy import text

from doe.errors import DoeError
from doe.store import Store, User, export_bundle, import_bundle
from tests.conftest import EXAMPLE, ROOT

ALICE = User("alice", authenticated=True)
NAME = "MSC expansion"


def small_study():
    from doe.study import Study

    return Study.from_dict({
        "name": NAME,
        "factors": [{"name": "Agitation", "low": 30, "high": 90, "units": "rpm"},
                    {"name": "Medium", "kind": "categorical", "levels": ["FBS 10%", "hPL 5%"]}],
        "responses": [{"name": "Viability", "units": "%", "goal": "maximize", "lower": 80}],
    })


@pytest.fixture
def store(tmp_path):
    s = Store.open(f"sqlite:///{tmp_path / 'doe.sqlite'}")
    yield s
    s.close()


def _two_designs(store):
    from doe.generators import full_factorial, generate

    study = small_study()
    store.save_study(study, ALICE)
    full = full_factorial(study, seed=3)
    lhs = generate(study, "lhs", runs=5, seed=11)
    return study, full, lhs


def _results(design, start=80.0):
    table = design.table[["Run", "Agitation", "Medium"]].copy()
    table["Viability"] = [start + i for i in range(len(table))]
    return table


# -- store ---------------------------------------------------------------------------------------
def test_named_designs_list_current_and_default_names(store):
    _, full, lhs = _two_designs(store)
    first = store.save_design(NAME, full, ALICE, "Screening")
    second = store.save_design(NAME, lhs, ALICE)  # no name: 'Latin hypercube (space-filling), 5 runs'
    third = store.save_design(NAME, lhs, ALICE)
    frame = store.designs(NAME)
    assert frame["name"].tolist() == ["Screening", "Latin hypercube (space-filling), 5 runs",
                                      "Latin hypercube (space-filling), 5 runs (2)"]
    assert frame["runs"].tolist() == [len(full.table), 5, 5]
    assert frame["seed"].tolist() == [3, 11, 11]
    assert frame["current"].tolist() == [False, False, True]  # the last one saved
    assert store.current_design(NAME) == third
    with pytest.raises(DoeError, match="already has a design named 'Screening'"):
        store.save_design(NAME, lhs, ALICE, "Screening")
    record = store.design_record(second)
    assert (record.kind, record.runs, record.seed, record.type_label) == ("lhs", 5, 11, "Latin hypercube (space-filling)")
    assert record.describe() == '"Latin hypercube (space-filling), 5 runs" (Latin hypercube (space-filling), 5 runs, seed 11)'
    assert store.load_design(first).n_runs == len(full.table)


def test_rename_current_delete_are_audit_trailed(store):
    _, full, lhs = _two_designs(store)
    a = store.save_design(NAME, full, ALICE, "A")
    b = store.save_design(NAME, lhs, ALICE, "B")
    store.rename_design(a, "  Full factorial, first try ", ALICE)
    store.set_current_design(a, ALICE)
    assert store.current_design(NAME) == a
    with pytest.raises(DoeError, match="already has a design named 'B'"):
        store.rename_design(a, "B", ALICE)
    with pytest.raises(DoeError, match="needs a name"):
        store.rename_design(a, "  ", ALICE)
    store.delete_design(b, ALICE, "trial only")
    assert store.designs(NAME)["id"].tolist() == [a]
    assert store.designs(NAME, include_deleted=True)["deleted"].tolist() == [False, True]
    with pytest.raises(DoeError, match="was deleted"):
        store.set_current_design(b, ALICE)
    trail = store.audit_trail(NAME).query("entity == 'design'")
    rows = [tuple(None if pd.isna(v) else v for v in (r.action, int(r.entity_id), r.field, r.old_value,
                                                      r.new_value, r.reason)) for r in trail.itertuples()]
    assert ("modify", a, "name", '"A"', '"Full factorial, first try"', None) in rows
    assert ("modify", b, "current", "true", "false", None) in rows  # a made current: b unmarked
    assert ("modify", a, "current", "false", "true", None) in rows
    assert ("delete", b, "deleted", "false", "true", "trial only") in rows
    assert store.verify_audit().ok


def test_frozen_or_used_design_cannot_be_deleted(store):
    _, full, lhs = _two_designs(store)
    a = store.save_design(NAME, full, ALICE, "A")
    b = store.save_design(NAME, lhs, ALICE, "B")
    settings = _results(lhs).assign(Viability=float("nan"))
    store.append_runs(NAME, settings, ALICE, design_id=b)  # settings only: used, not frozen
    with pytest.raises(DoeError, match="data version 1 records runs made from it"):
        store.delete_design(b, ALICE)
    store.append_runs(NAME, _results(lhs), ALICE)  # results: b (the data's design) frozen, a not
    assert store.designs(NAME).set_index("name")["frozen"].to_dict() == {"A": False, "B": True}
    with pytest.raises(DoeError, match="is frozen: results were entered against it"):
        store.delete_design(b, ALICE)
    store.delete_design(a, ALICE)  # unused and not frozen
    assert store.designs(NAME)["name"].tolist() == ["B"]


def test_data_version_records_its_design_and_edits_keep_it(store):
    _, full, lhs = _two_designs(store)
    a = store.save_design(NAME, full, ALICE, "A")
    b = store.save_design(NAME, lhs, ALICE, "B")  # newer, and current
    v1 = store.append_runs(NAME, _results(full), ALICE, design_id=a)
    runs = store.runs(NAME)
    v2 = store.update_result(int(runs["run_id"].iloc[0]), "Viability", 99.0, int(runs["row_version"].iloc[0]),
                             ALICE, reason="typo")
    assert store.data_versions(NAME)["design_id"].tolist() == [a, a]
    assert store.design_of_data_version(NAME, v1) == a
    assert store.design_of_data_version(NAME) == a != b == store.current_design(NAME)
    assert v2 == 2
    with pytest.raises(DoeError, match="no data version 5"):
        store.design_of_data_version(NAME, 5)
    with pytest.raises(DoeError, match="no design 999"):
        store.append_runs(NAME, _results(lhs), ALICE, design_id=999)


def test_bundle_carries_names_current_deleted_and_data_design(store, tmp_path):
    _, full, lhs = _two_designs(store)
    a = store.save_design(NAME, full, ALICE, "Screening")
    b = store.save_design(NAME, lhs, ALICE, "Trial")
    store.save_design(NAME, lhs, ALICE, "Gone")
    store.delete_design(store.current_design(NAME), ALICE)
    store.set_current_design(a, ALICE)
    store.append_runs(NAME, _results(full), ALICE, design_id=a)
    data = export_bundle(store, NAME, ALICE)
    other = Store.open(f"sqlite:///{tmp_path / 'other.sqlite'}")
    try:
        import_bundle(other, data, ALICE)
        got = other.designs(NAME, include_deleted=True)
        assert got[["name", "current", "deleted", "frozen"]].values.tolist() == [
            ["Screening", True, False, True], ["Trial", False, False, False], ["Gone", False, True, False]]
        assert other.design_record(other.design_of_data_version(NAME)).name == "Screening"
        assert b != a
    finally:
        other.close()


def test_a_v0003_database_upgrades_with_default_names(tmp_path):
    """A database made by the previous software (schema 0003) opens: designs named 'Design N', the newest current."""
    from alembic import command

    from doe.store import _engine

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = _engine.make_engine(url)
    with engine.begin() as conn:
        command.upgrade(_engine.alembic_config(conn), "0003")
        conn.execute(text("INSERT INTO studies (id, name, created_at, created_by) VALUES (1, 'S', 't', 'u'), "
                          "(2, 'T', 't', 'u')"))
        for sid, did in ((1, 1), (2, 2), (1, 3)):
            conn.execute(text("INSERT INTO designs (id, study_id, study_version, kind, seed, model, run_sheet, "
                              "frozen, created_at, created_by) VALUES (:d, :s, 1, 'lhs', 5, NULL, "
                              "'Run,A\n1,1\n2,2\n', 0, 't', 'u')"), {"d": did, "s": sid})
        conn.execute(text("INSERT INTO data_versions (study_id, version, content_hash, n_runs, reason, created_at, "
                          "created_by) VALUES (1, 1, 'h', 2, NULL, 't', 'u')"))
    engine.dispose()
    store = Store.open(url)
    try:
        assert store.designs("S")[["id", "name", "current", "runs"]].values.tolist() == [
            [1, "Design 1", False, 2], [3, "Design 2", True, 2]]
        assert store.designs("T")[["name", "current"]].values.tolist() == [["Design 1", True]]
        assert store.design_of_data_version("S", 1) is None
        assert store.data_versions("S")["design_id"].isna().all()
    finally:
        store.close()


# -- the example and the report -------------------------------------------------------------------
def test_example_constants_are_the_simulation_script_s():
    script = runpy.run_path(str(ROOT / "data" / "simulate_example.py"), run_name="not_main")
    from doe import example

    assert (example.DESIGN_MODEL, example.DESIGN_RUNS, example.DESIGN_SEED) == (
        script["MODEL"], script["RUNS"], script["SEED"])
    assert "generate(study, 'optimal'" in open(ROOT / "data" / "simulate_example.py", encoding="utf-8").read()


@pytest.fixture(scope="module")
def example_store(tmp_path_factory):
    """The example results loaded (against the example design), analysed, then a newer 12-run LHS saved."""
    from doe.example import DESIGN_NAME, load_example_results
    from doe.generators import generate
    from doe.study import Study
    from doe.versions import rerun_analysis

    store = Store.open(f"sqlite:///{tmp_path_factory.mktemp('records') / 'doe.sqlite'}")
    study = Study.load(EXAMPLE)
    store.save_study(study, "alice")
    design_id, version = load_example_results(store, study, "alice")
    rerun_analysis(store, study.name, "alice", draws=200)
    store.save_design(study.name, generate(study, "lhs", runs=12, seed=5), "alice", "Trial LHS")
    yield store, study, design_id, version, DESIGN_NAME
    store.close()


def test_example_results_are_entered_against_the_example_design(example_store):
    store, study, design_id, version, name = example_store
    record = store.design_record(design_id)
    assert (record.name, record.kind, record.runs, record.seed, record.model) == (
        "Example D-optimal design, 40 runs", "optimal", 40, 20261128, "quadratic")
    assert record.frozen
    assert store.design_of_data_version(study.name, version) == design_id
    assert store.data_versions(study.name)["n_runs"].tolist() == [40]
    with pytest.raises(DoeError, match="already has runs"):
        from doe.example import load_example_results

        load_example_results(store, study, "alice")


def test_report_names_the_data_s_design_not_the_newest(example_store):
    """The bug: the report described the newest design saved (a 12-run LHS) with empty efficiencies."""
    from doe.evaluate import evaluate_design
    from doe.example import example_design
    from doe.model import parse_model
    from doe.report import build_report

    store, study, design_id, version, name = example_store
    content = build_report(store, study.name, draws=200)
    section = next(s for s in content.sections if s.heading.startswith("3. Design"))
    words = " ".join(getattr(b, "text", "") for b in section.blocks)
    assert f'"{name}"' in words and "40 runs" in words and "seed 20261128" in words
    assert "12 runs" not in words and "lhs" not in words.lower()
    table = next(b for b in section.blocks if getattr(b, "caption", "") == "Design evaluation.").frame
    ev = evaluate_design(study, example_design(study), parse_model(study, "quadratic")).to_json()
    row = table.iloc[0].tolist()
    assert float(str(row[0])) == 40
    assert float(str(row[1])) == pytest.approx(ev["d_efficiency"], rel=1e-3)  # D-efficiency %, not blank
    assert ev["d_efficiency"] > 0


# -- CLI -------------------------------------------------------------------------------------------
def test_cli_designs_lists_renames_marks_current_and_refuses_frozen(tmp_path, capsys):
    from doe.cli import main
    from doe.example import load_example_results
    from doe.generators import generate
    from doe.study import Study

    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    store = Store.open(url)
    study = Study.load(EXAMPLE)
    store.save_study(study, "alice")
    example_id, _ = load_example_results(store, study, "alice")
    trial = store.save_design(study.name, generate(study, "lhs", runs=12, seed=1), "alice")
    store.close()
    base = ["designs", "--db", url, "--study", study.name, "--user", "bob"]
    assert main([*base, "--rename", str(trial), "Trial LHS", "--current", str(example_id)]) == 0
    out = capsys.readouterr().out
    assert f"design {trial} renamed to 'Trial LHS'" in out
    assert f"data version 1: run on design {example_id} 'Example D-optimal design, 40 runs'" in out
    assert main([*base, "--delete", str(example_id)]) == 2
    assert "is frozen" in capsys.readouterr().err
    assert main([*base, "--delete", str(trial), "--reason", "trial only", "--json", str(tmp_path / "d.json")]) == 0
    listed = json.loads((tmp_path / "d.json").read_text())
    assert [d["name"] for d in listed["designs"]] == ["Example D-optimal design, 40 runs"]
    assert listed["designs"][0]["current"] is True and listed["data_design"] == example_id
    assert main([*base, "--rename", "x", "New"]) == 2
    assert "is not a design id" in capsys.readouterr().err
    store = Store.open(url)
    try:
        trail = store.audit_trail(study.name).query("entity == 'design' and user_name == 'bob'")
        assert trail["field"].tolist() == ["name", "current", "current", "deleted"]
    finally:
        store.close()


# -- pages (Streamlit AppTest) -------------------------------------------------------------------------
def _app(page: str | None = None, link: str | None = None):
    """A new session as "tester"; ``link``: the study named in the address (?study=NAME)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.session_state["_user_name"] = "tester"
    if link:
        at.query_params["study"] = link
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def _db():
    from doe.store import default_url

    return Store.open(default_url())


def _studies():
    store = _db()
    try:
        return store.list_studies()["name"].tolist(), (store.designs(NAME) if NAME in store.list_studies()["name"].tolist()
                                                       else None)
    finally:
        store.close()


def test_design_page_generate_does_not_save_until_save_with_a_name():
    at = _app("pages/design.py")
    at.button(key="generate").click().run()
    assert not at.exception, at.exception
    _, designs = _studies()
    assert designs is None or designs.empty  # generated, shown, not saved
    assert any("Design not saved" in m.value for m in at.markdown)
    box = next(t for t in at.text_input if t.label == "Design name")
    assert box.value.endswith(", 40 runs")  # the default name: type and runs
    box.set_value("First D-optimal").run()
    at.button(key="save_design").click().run()
    assert not at.exception, at.exception
    _, designs = _studies()
    assert designs["name"].tolist() == ["First D-optimal"] and designs["current"].tolist() == [True]
    assert at.session_state["design_id"] == int(designs["id"].iloc[0])
    assert any('Saved in the database as design' in c.value and '"First D-optimal"' in c.value for c in at.caption)
    # the section lists it with human column labels and renames it
    table = next(d.value for d in at.dataframe if "Frozen (results entered)" in d.value.columns)
    assert table[["Name", "Runs", "Current"]].values.tolist() == [["First D-optimal", 40, "yes"]]
    did = int(designs["id"].iloc[0])
    at.text_input(key=f"records_name_{did}").set_value("Renamed").run()
    at.button(key="records_rename").click().run()
    assert not at.exception, at.exception
    _, designs = _studies()
    assert designs["name"].tolist() == ["Renamed"]
    assert any(f"Design {did} renamed." in s.value for s in at.success)


def test_runs_page_example_results_name_their_design_and_a_new_sheet_asks_for_a_reason():
    at = _app("pages/runs.py")
    at.button(key="load_example_results").click().run()
    assert not at.exception, at.exception
    assert any("saved as data version 1" in s.value and "Example D-optimal design, 40 runs" in s.value
               for s in at.success), [e.value for e in at.error]
    store = _db()
    try:
        example_id = store.design_of_data_version(NAME, 1)
        assert store.design_record(example_id).name == "Example D-optimal design, 40 runs"
    finally:
        store.close()
    # a new design, saved, then its run sheet added after results exist: a reason is asked for
    at.switch_page("pages/design.py").run()
    at.button(key="generate").click().run()
    at.button(key="save_design").click().run()
    new_id = at.session_state["design_id"]
    assert new_id != example_id
    at.switch_page("pages/runs.py").run()
    assert not at.exception, at.exception
    reason = at.text_input(key="sheet_reason")
    assert "Reason for adding runs to results already measured" in reason.label
    at.button(key="from_design").click().run()
    assert any("needs a reason" in e.value for e in at.error)
    store = _db()
    try:
        assert store.data_versions(NAME)["version"].tolist() == [1]  # refused: nothing written
    finally:
        store.close()
    at.text_input(key="sheet_reason").set_value("second campaign on the new design").run()
    at.button(key="from_design").click().run()
    assert not at.exception, at.exception
    store = _db()
    try:
        assert store.design_of_data_version(NAME) == new_id
        assert store.data_versions(NAME)["reason"].tolist()[-1] == "second campaign on the new design"
        # no measured run was given the new design's settings: the 40 example runs are as loaded, and
        # the new design's runs were added under new ids 41, 42, ...
        runs = store.runs(NAME).drop(columns=["run_id", "row_version"])
        example = pd.read_csv(ROOT / "data" / "msc_example_results.csv")
        first = runs[runs["Run"].astype(int) <= 40].sort_values("Run", key=lambda c: c.astype(int))
        for col in ["Medium", "Surface", "Harvest reagent", "Agitation", "Seeding density", "Viability"]:
            assert first[col].astype(str).tolist() == example[col].astype(str).tolist(), col
        added = sorted(int(r) for r in runs["Run"] if int(r) > 40)
        assert added == list(range(41, 41 + len(added))) and len(added) > 0
    finally:
        store.close()


def test_a_stored_study_opens_with_its_current_design_not_the_newest():
    from doe.generators import generate
    from doe.study import Study

    store = _db()
    try:
        study = Study.load(EXAMPLE)
        store.save_study(study, "alice")
        chosen = store.save_design(NAME, generate(study, "lhs", runs=12, seed=2), "alice", "Chosen")
        store.save_design(NAME, generate(study, "lhs", runs=14, seed=3), "alice", "Newer trial")
        store.set_current_design(chosen, "alice")
    finally:
        store.close()
    at = _app(link=NAME)  # a new session opens the stored study from its link
    assert at.session_state["study"].name == NAME
    assert at.session_state["design_id"] == chosen and at.session_state["design"].n_runs == 12


def test_versions_page_names_the_design_of_each_data_version():
    at = _app("pages/runs.py")
    at.button(key="load_example_results").click().run()
    at.switch_page("pages/versions.py").run()
    assert not at.exception, at.exception
    table = next(d.value for d in at.dataframe if "Design" in d.value.columns)
    assert table["Design"].tolist() == ["1: Example D-optimal design, 40 runs"]


def test_a_bundle_from_before_design_names_still_imports(store, tmp_path):
    """A bundle written by the previous software (designs without names, data versions without a design)."""
    from tests.test_bundle import forge

    _, full, lhs = _two_designs(store)
    a = store.save_design(NAME, full, ALICE, "Screening")
    store.save_design(NAME, lhs, ALICE, "Trial")
    store.append_runs(NAME, _results(full), ALICE, design_id=a)
    data = export_bundle(store, NAME, ALICE)

    def before_names(csvs, docs, others):
        for d in docs["designs/designs.json"]:
            for key in ("name", "current", "deleted"):
                del d[key]
        header, rows = csvs["runs/data_versions.csv"]
        csvs["runs/data_versions.csv"] = ([c for c in header if c != "design"], rows)
        header, trail = csvs["audit/audit_trail.csv"]  # that software recorded no names, current or data design
        csvs["audit/audit_trail.csv"] = (header, [r for r in trail if r["field"] != "design_id" and not (
            r["entity"] == "design" and r["field"] in ("name", "current"))])

    old = forge(data, before_names, old_format=True)  # bundle schema 1: unsigned
    other = Store.open(f"sqlite:///{tmp_path / 'old-bundle.sqlite'}")
    try:
        import_bundle(other, old, ALICE, allow_unsigned=True)
        assert other.designs(NAME)[["name", "current"]].values.tolist() == [["Design 1", False], ["Design 2", True]]
        assert other.design_of_data_version(NAME) is None
    finally:
        other.close()


def test_report_falls_back_to_runs_as_performed_when_no_design_is_recorded(tmp_path):
    """Runs uploaded without a design: the report describes the runs, not some trial design saved later."""
    from doe.generators import generate
    from doe.report import build_report
    from doe.runs import read_results
    from doe.study import Study
    from doe.versions import rerun_analysis

    store = Store.open(f"sqlite:///{tmp_path / 'doe.sqlite'}")
    try:
        study = Study.load(EXAMPLE)
        store.save_study(study, "alice")
        store.append_runs(study.name, read_results(study, ROOT / "data" / "msc_example_results.csv").table, "alice")
        rerun_analysis(store, study.name, "alice", draws=200)
        store.save_design(study.name, generate(study, "lhs", runs=12, seed=5), "alice", "Trial LHS")
        content = build_report(store, study.name, draws=200)
    finally:
        store.close()
    section = next(s for s in content.sections if s.heading.startswith("3. Design"))
    words = " ".join(getattr(b, "text", "") for b in section.blocks)
    assert "runs as performed (no stored design); 40 runs" in words and "Trial LHS" not in words


def test_design_page_deletes_an_unused_design_and_says_why_not_for_a_frozen_one():
    at = _app("pages/design.py")
    for seed in ("1", "2"):
        next(t for t in at.text_input if t.label.startswith("Seed")).set_value(seed).run()
        at.button(key="generate").click().run()
        at.button(key="save_design").click().run()
        assert not at.exception, at.exception
    _, designs = _studies()
    first, second = (int(i) for i in designs["id"])
    at.selectbox(key="records_design").set_value(first).run()
    at.text_input(key="records_reason").set_value("duplicate").run()
    at.button(key="records_delete").click().run()
    assert not at.exception, at.exception
    _, designs = _studies()
    assert designs["id"].tolist() == [second]
    assert any(f"Design {first} deleted." in s.value for s in at.success)
    store = _db()
    try:
        store.append_runs(NAME, store.load_design(second).run_sheet().assign(Viability=90.0), "lab", design_id=second)
    finally:
        store.close()
    import time

    time.sleep(0.6)  # past the page's read-cache window (pages._app.db.MARK_SECONDS): the change is seen
    at.run()
    assert any(f"Design {second} is frozen" in c.value for c in at.caption)
    assert not any(b.key == "records_delete" for b in at.button)


def test_run_sheet_addition_never_changes_a_stored_run():
    """Adding a run sheet: runs stored with the same settings are skipped, an id held by a stored run
    with other settings gets the next free number (the stored run, with its result, is untouched)."""
    from doe.design import read_design
    from doe.runs import run_sheet_addition
    from doe.study import Study

    study = Study.from_dict({"name": "t", "factors": [{"name": "A", "low": 0, "high": 10}],
                             "responses": [{"name": "Y"}]})
    design = read_design(study, b"Run,A\n1,0\n2,10\n3,5\n", "d.csv")
    stored = pd.DataFrame({"Run": ["1", "2"], "A": [0.0, 7.0], "Y": [1.5, 2.5], "Notes": ["", ""],
                           "run_id": [1, 2], "row_version": [1, 1]})
    add = run_sheet_addition(stored, design)
    assert add.already == 1 and add.renumbered == {"2": "4"} and add.has_results
    assert sorted(add.batch["Run"].astype(int)) == [3, 4]
    assert add.batch.set_index(add.batch["Run"].astype(int))["A"].to_dict() == {3: 5.0, 4: 10.0}
    assert add.batch["Y"].isna().all() and add.batch["row_version"].isna().all()
    assert "2 as 4" in add.describe()
    assert run_sheet_addition(None, design).batch["Run"].astype(int).tolist() == [1, 2, 3]
    assert not run_sheet_addition(None, design).has_results


@pytest.mark.parametrize("seed, recorded", [(20261128, True), (1, False)])
def test_first_upload_names_the_design_only_when_its_runs_are_that_designs(seed, recorded):
    """The example results are the runs of the D-optimal design made with seed 20261128: uploaded with
    that design saved, the data version names it; with another design saved (seed 1: other runs), the
    results are saved without naming a design, and the page says why."""
    at = _app("pages/design.py")
    at.text_input(key="design_seed").set_value(str(seed))
    at.button(key="generate").click().run()
    at.button(key="save_design").click().run()
    design_id = at.session_state["design_id"]
    at.switch_page("pages/runs.py").run()
    path = ROOT / "data" / "msc_example_results.csv"
    at.file_uploader(key="results_upload").set_value(("results.csv", path.read_bytes(), "text/csv")).run()
    warned = [w.value for w in at.warning if "are not runs of the design" in w.value]
    assert bool(warned) is not recorded, warned
    at.button(key="save_upload").click().run()
    assert not at.exception, at.exception
    store = _db()
    try:
        assert store.design_of_data_version(NAME, 1) == (design_id if recorded else None)
    finally:
        store.close()


def test_current_runs_report_names_the_design_the_runs_were_run_on():
    """The Report page's report of the open study's current runs (no saved analysis version) describes
    the design the stored data version names, not 'runs as performed'."""
    at = _app("pages/runs.py")
    at.button(key="load_example_results").click().run()
    at.switch_page("pages/report.py").run()
    at.selectbox(key="report_source").set_value("the open study and its current runs (not a saved analysis)").run()
    at.button(key="build_report").click().run()
    assert not at.exception, at.exception
    html = list(at.session_state["report_cache"].values())[-1]["html"].decode("utf-8")
    assert "were run on the design &quot;Example D-optimal design, 40 runs&quot;" in html \
        or 'were run on the design "Example D-optimal design, 40 runs"' in html
    assert "runs as performed" not in html and "seed 20261128" in html
    store = _db()
    try:  # figures name the data version as the Versions page does: number and the store's content hash
        digest = store.data_versions(NAME)["content_hash"].iloc[-1][:12]
    finally:
        store.close()
    assert f"data version 1 ({digest})" in html
