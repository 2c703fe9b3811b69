"""Optimistic concurrency on the study (issue 15, part 1): a stale save is refused naming who changed what,
an unchanged study is never saved again, and the study and its runs are written in one transaction."""

import time

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from doe.cli import main
from doe.errors import DoeError
from doe.store import Store, StudyConflictError, default_url
from doe.study import Study
from pages._app.db import MARK_SECONDS
from tests.conftest import ROOT

EXAMPLE = ROOT / "data" / "msc_expansion.yaml"
APP = str(ROOT / "app.py")


def _study() -> Study:
    return Study.load(EXAMPLE)


def _with(study: Study, **changes) -> Study:
    data = study.to_dict()
    data.update(changes)
    return Study.from_dict(data)


@pytest.fixture()
def store(tmp_path):
    s = Store.open(data_dir=str(tmp_path))
    yield s
    s.close()


def test_the_lost_update_of_the_issue_is_refused_and_names_who_changed_what(store):
    base = _study()
    assert store.save_study(base, "alice", expected_version=None) == 1
    alice = _with(base, description="Alice's description")
    assert store.save_study(alice, "alice", expected_version=1) == 2
    bob = _with(base, description="Bob's description")
    with pytest.raises(StudyConflictError) as err:
        store.save_study(bob, "bob", expected_version=1)  # Bob edited version 1, Alice saved 2 meanwhile
    text = str(err.value)
    assert "alice" in text and "version 2" in text and "description" in text and "not saved" in text
    assert err.value.latest_version == 2
    assert store.study_versions(base.name)["version"].tolist() == [1, 2]  # nothing written
    assert store.load_study(base.name).description == "Alice's description"  # Alice's change kept


def test_an_unchanged_study_is_never_saved_again(store):
    base = _study()
    store.save_study(base, "alice", expected_version=None)
    mark = store.change_mark()
    assert store.save_study(base, "bob", expected_version=1) == 1
    assert store.change_mark() == mark  # no audit record, no version


def test_a_stale_unchanged_copy_is_refused_not_written_over_the_newer_version(store):
    base = _study()
    store.save_study(base, "alice", expected_version=None)
    store.save_study(_with(base, description="new"), "alice", expected_version=1)
    with pytest.raises(StudyConflictError):
        store.save_study(base, "bob", expected_version=1)  # Bob's copy is version 1 unchanged
    assert store.study_versions(base.name)["version"].tolist() == [1, 2]


def test_a_new_study_whose_name_someone_took_meanwhile_is_refused(store):
    store.save_study(_study(), "alice", expected_version=None)
    with pytest.raises(StudyConflictError, match="while you were editing yours"):
        store.save_study(_with(_study(), description="mine"), "bob", expected_version=None)


def test_study_and_runs_are_one_transaction(store):
    base = _study()
    runs = pd.DataFrame({"Run": ["R1"], **{f.name: [f.levels[0] if f.levels else f.low]
                                           for f in base.factors}})
    with pytest.raises(DoeError, match="no design 999"):
        store.import_study(base, runs, "alice", design_id=999)  # the runs are refused after the study row
    assert store.list_studies().empty  # ... and the study version went with them
    version, dv = store.import_study(base, runs, "alice")
    assert (version, dv) == (1, 1) and len(store.runs(base.name)) == 1


def test_cli_import_leaves_no_study_version_without_its_runs(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    runs = tmp_path / "runs.csv"
    base = _study()
    pd.DataFrame({"Run": ["R1"], **{f.name: [f.levels[0] if f.levels else f.low] for f in base.factors}}) \
        .to_csv(runs, index=False)
    code = main(["import", "--db", db, str(EXAMPLE), "--runs", str(runs), "--design", "7", "--user", "ana"])
    assert code != 0 and "no design 7" in capsys.readouterr().err
    check = Store.open(db)
    assert check.list_studies().empty
    check.close()


def test_last_study_of_a_user(store):
    store.save_study(_study(), "alice", expected_version=None)
    store.save_study(_with(_study(), name="Other study"), "bob", expected_version=None)
    assert store.last_study_of("alice") == _study().name
    assert store.last_study_of("bob") == "Other study"
    assert store.last_study_of("carol") is None


# -- in the app: two people, two sessions ----------------------------------------------------
def _session(user: str, name: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state["_user_name"] = user
    at.query_params["study"] = name
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["study"].name == name
    return at


def test_two_sessions_a_stale_study_edit_and_a_stale_runs_save_are_refused_with_a_reload():
    name = _study().name
    db = Store.open(default_url())
    db.save_study(_study(), "alice", expected_version=None)
    alice, bob = _session("alice", name), _session("bob", name)
    bob.switch_page("pages/study.py").run()
    bob.text_area[0].set_value("Bob's description")
    bob.button(key="apply").click().run()
    assert any("Saved as version 2" in s.value for s in bob.success), [e.value for e in bob.error]
    time.sleep(MARK_SECONDS + 0.05)
    alice.switch_page("pages/study.py").run()  # Alice's session still holds version 1
    if alice.text_area[0].value == "Bob's description":
        pytest.fail("Alice's session should still show the study she opened (version 1)")
    alice.text_area[0].set_value("Alice's description")
    alice.button(key="apply").click().run()
    refused = " ".join(e.value for e in alice.error)
    assert "changed by someone else" in refused and "bob" in refused and "description" in refused, refused
    assert db.study_versions(name)["version"].tolist() == [1, 2]
    assert db.load_study(name).description == "Bob's description"
    alice.button(key="reload_study").click().run()  # load the newest version, then the edit goes through
    assert alice.session_state["study"].description == "Bob's description"
    alice.text_area[0].set_value("Alice's description")
    alice.button(key="apply").click().run()
    assert any("Saved as version 3" in s.value for s in alice.success), [e.value for e in alice.error]
    db.close()


def test_a_stale_session_saving_results_writes_neither_a_study_version_nor_runs():
    name = _study().name
    db = Store.open(default_url())
    db.save_study(_study(), "alice", expected_version=None)
    alice = _session("alice", name)
    db.save_study(_with(_study(), description="Bob's description"), "bob", expected_version=1)
    time.sleep(MARK_SECONDS + 0.05)
    alice.switch_page("pages/runs.py").run()
    alice.button(key="load_example_results").click().run()  # Alice's copy is version 1, Bob saved 2
    refused = " ".join(e.value for e in alice.error)
    assert "changed by someone else" in refused and "bob" in refused, refused
    assert db.study_versions(name)["version"].tolist() == [1, 2]  # today: a version 3 re-saving Alice's copy
    assert db.data_versions(name).empty and db.load_study(name).description == "Bob's description"
    db.close()


def test_design_and_user_names_fit_every_database_and_carry_no_control_characters(store):
    """Names the store writes are checked alike for SQLite (no length limit) and PostgreSQL (VARCHAR(200))."""
    from doe.generators import generate

    store.save_study(_study(), "alice", expected_version=None)
    design = generate(_study(), "lhs", runs=12, seed=1)
    with pytest.raises(DoeError, match="at most 200 characters"):
        store.save_design(_study().name, design, "alice", "D" * 201)
    with pytest.raises(DoeError, match="bidirectional-override"):
        store.save_design(_study().name, design, "alice", "Design \u202eevil")
    with pytest.raises(DoeError, match="user name has at most 200"):
        store.save_study(_with(_study(), description="x"), "a" * 201)
    with pytest.raises(DoeError, match="NUL"):
        store.save_study(_with(_study(), description="x"), "ana\x00")
    design_id = store.save_design(_study().name, design, "alice", "LHS, 12 runs")
    with pytest.raises(DoeError, match="control character"):
        store.rename_design(design_id, "LHS\x07", "alice")
