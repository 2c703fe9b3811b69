"""Which study a new session opens: the one in the link, or the user's own last study; never the latest
study of anyone (pages/_app/first_visit.py). The bundled example opens only while the database is empty."""

from streamlit.testing.v1 import AppTest

from doe.store import Store, User, default_url
from doe.study import Study
from tests.conftest import EXAMPLE, ROOT

APP = str(ROOT / "app.py")


def session(user: str | None = None, link: str | None = None) -> AppTest:
    """A new browser session: ``user`` is a name already given in it, ``link`` the ?study= of the address."""
    at = AppTest.from_file(APP, default_timeout=120)
    if user:
        at.session_state["_user_name"] = user
    if link:
        at.query_params["study"] = link
    at.run()
    assert not at.exception, at.exception
    return at


def opened(at: AppTest) -> str | None:
    return at.session_state["study"].name if "study" in at.session_state and at.session_state["study"] else None


def two_studies() -> None:
    """Ana's study, then Bob's: Bob's is the newest study in the database."""
    store = Store.open(default_url())
    try:
        example = Study.load(EXAMPLE)
        ana = Study.from_dict({**example.to_dict(), "name": "Ana's expansion"})
        bob = Study.from_dict({**example.to_dict(), "name": "Bob's expansion"})
        store.save_study(ana, User("ana"))
        store.save_study(bob, User("bob"))
    finally:
        store.close()


def test_an_empty_database_opens_the_bundled_example():
    assert opened(session()) == "MSC expansion"


def test_an_unknown_user_opens_no_study_and_home_lists_the_studies():
    two_studies()
    at = session()
    assert opened(at) is None  # before: Bob's study, the newest in the database
    info = " ".join(i.value for i in at.info)
    assert "No study is open" in info and "entering your name" in info
    assert at.selectbox(key="open_study_name").options == ["Ana's expansion", "Bob's expansion"]
    at.button(key="open_study").click().run()  # the next step: open one
    assert not at.exception, at.exception
    assert opened(at) == "Ana's expansion"


def test_a_known_user_opens_their_own_last_study_not_the_newest():
    two_studies()
    assert opened(session("ana")) == "Ana's expansion"
    assert opened(session("bob")) == "Bob's expansion"
    assert opened(session("carol")) is None  # changed nothing: no one else's study


def test_the_link_opens_the_study_it_names():
    two_studies()
    assert opened(session(link="Ana's expansion")) == "Ana's expansion"
    assert opened(session("bob", link="Ana's expansion")) == "Ana's expansion"  # the link wins


def test_a_link_to_a_missing_study_says_so_and_opens_nothing():
    two_studies()
    at = session(link="Carol's study")
    assert opened(at) is None
    assert any("'Carol's study', which is not in this database" in w.value for w in at.warning)


def test_entering_a_name_reopens_that_persons_last_study():
    two_studies()
    at = session()
    assert opened(at) is None
    at.text_input(key="user_name_input").input("ana").run()
    assert not at.exception, at.exception
    assert opened(at) == "Ana's expansion"
    at = session(link="Bob's expansion")
    at.text_input(key="user_name_input").input("ana").run()  # a study is open: the name does not switch it
    assert not at.exception, at.exception
    assert opened(at) == "Bob's expansion"


def test_home_lists_the_studies_with_times_shown_as_in_every_other_table():
    import re

    two_studies()
    table = session().dataframe[0].value
    assert list(table.columns) == ["Study", "Latest version", "Created at (UTC)", "Created by"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", t) for t in table["Created at (UTC)"])
