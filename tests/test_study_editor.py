"""The study editor keeps every number as typed: 36.5 stays 36.5 (not 365), a decimal comma is
refused with a message saying what to type, never read as another number (issue 14)."""

from __future__ import annotations

import pandas as pd
import pytest

from doe.errors import StudyError
from doe.tables import (
    FACTOR_NUMBERS,
    RESPONSE_NUMBERS,
    as_editor_text,
    blank_study,
    factors_table,
    responses_table,
    study_from_tables,
)
from tests.test_e2e_store import Server, browser, idle, open_app  # noqa: F401  (browser: fixture)


def _edited(low="36.5", high="38.5", lower="1.5"):
    study = blank_study()
    f = as_editor_text(factors_table(study), FACTOR_NUMBERS)
    r = as_editor_text(responses_table(study), RESPONSE_NUMBERS)
    f.loc[0, ["low", "high"]] = [low, high]
    r.loc[0, "lower"] = lower
    return study_from_tables("Decimals", f, r)


def test_number_columns_are_float_for_the_integer_defaults():
    study = blank_study()  # defaults 30, 90, 1000, 5000 and 80 are integers
    assert all(pd.api.types.is_float_dtype(factors_table(study)[c]) for c in FACTOR_NUMBERS)
    assert all(pd.api.types.is_float_dtype(responses_table(study)[c]) for c in RESPONSE_NUMBERS)


def test_editor_text_round_trips_every_digit():
    study = blank_study()
    f = as_editor_text(factors_table(study), FACTOR_NUMBERS)
    assert f["low"].tolist() == ["30", "1000"] and f["high"].tolist() == ["90", "5000"]
    r = as_editor_text(responses_table(study), RESPONSE_NUMBERS)
    assert r.loc[0, "lower"] == "80" and r.loc[0, "upper"] == ""
    assert study_from_tables(study.name, f, r).to_yaml() == study.to_yaml()


def test_decimals_typed_in_the_editor_are_kept():
    study = _edited()
    assert (study.factors[0].low, study.factors[0].high) == (36.5, 38.5)
    assert study.responses[0].lower == 1.5


@pytest.mark.parametrize("typed, hint", [("36,5", "'36.5' if the comma is a decimal comma"),
                                         ("1,000", "'1000' if it separates thousands")])
def test_a_decimal_comma_is_refused_with_what_to_type(typed, hint):
    with pytest.raises(StudyError) as err:
        _edited(low=typed)
    assert "Factor row 1 low" in str(err.value) and "decimal point" in str(err.value)
    assert hint in str(err.value)


def _select(page, grid, row: int, col: int) -> bool:
    """Click the row's first cell and arrow to the column until the grid reports that cell selected."""
    target = f"glide-cell-{col + 1}-{row}"
    selected = grid.locator("[aria-selected=true]")
    page.keyboard.press("Escape")
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 60, box["y"] + 35 + 17 + 35 * row)
    for _ in range(40):
        page.wait_for_timeout(250)
        now = selected.first.get_attribute("id") if selected.count() else None
        if now == target:
            return True
        if now is not None and now.startswith("glide-cell-") and now.endswith(f"-{row}"):
            page.keyboard.press("ArrowRight" if int(now.split("-")[2]) < col + 1 else "ArrowLeft")
    return False


def _type_into(page, grid, row: int, col: int, text: str) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    """Type ``text`` into a cell of a data editor, as a user does: select the cell, Enter to open its
    editor, type, Enter; again while the grid had not taken it (a click while the editor is still settling)."""
    cell = grid.locator(f"#glide-cell-{col + 1}-{row}")
    before = cell.text_content()
    for _ in range(6):
        if _select(page, grid, row, col):
            page.keyboard.press("Enter")  # opens the cell's editor
            box = page.locator("#portal textarea, #portal input").first  # the open editor (text or number)
            try:
                box.wait_for(timeout=5_000)
            except PlaywrightTimeout:
                continue
            box.press("Control+a")
            box.press_sequentially(text)  # key by key, as typed
            box.press("Enter")
            for _ in range(20):  # the grid shows the new value once the editor has closed
                page.wait_for_timeout(200)
                if cell.text_content() != before:
                    return
    raise AssertionError(f"could not type {text!r} into cell ({row}, {col}) of the editor")


def _new_study_typed(browser, tmp_path, low: str, high: str, lower: str):  # noqa: F811
    server = Server(tmp_path)
    page = open_app(browser, server, name="Ana Lopez")
    page.get_by_role("button", name="New study").click()
    page.wait_for_selector("[data-testid=stDataFrame]", timeout=60_000)
    idle(page)
    page.wait_for_timeout(1000)  # the editors settle (column widths) after the first paint
    grids = page.locator("[data-testid=stDataFrame]")
    _type_into(page, grids.nth(0), 0, 2, low)
    _type_into(page, grids.nth(0), 0, 3, high)
    _type_into(page, grids.nth(1), 0, 3, lower)
    page.get_by_role("textbox", name="Study name").fill("Decimals")
    page.get_by_role("button", name="Apply changes").click()
    idle(page)
    return server, page


def test_browser_keeps_decimals_typed_into_a_new_study(browser, tmp_path):  # noqa: F811
    from doe.store import Store

    server, page = _new_study_typed(browser, tmp_path, "36.5", "38.5", "1.5")
    try:
        # waits for the message (the save's rerun may still be drawing on a loaded machine)
        page.get_by_text("Saved as version 1 of 'Decimals'.").wait_for(timeout=60_000)
        saved = Store.open(f"sqlite:///{tmp_path / 'doe.sqlite'}").load_study("Decimals")
        assert (saved.factors[0].low, saved.factors[0].high) == (36.5, 38.5)
        assert saved.responses[0].lower == 1.5
    finally:
        page.close()
        server.kill()


def test_browser_refuses_a_decimal_comma_with_a_message(browser, tmp_path):  # noqa: F811
    server, page = _new_study_typed(browser, tmp_path, "36,5", "38.5", "1.5")
    try:
        page.get_by_text("contains a comma", exact=False).wait_for(timeout=10_000)
        assert page.get_by_text("Not applied: Factor row 1 low: '36,5' contains a comma").is_visible()
        assert page.get_by_text("Saved as version").count() == 0
    finally:
        page.close()
        server.kill()
