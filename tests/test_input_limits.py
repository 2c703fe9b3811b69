"""Every limit of doe.limits: checked before work starts, with a message that names the limit, the
value found and what to do; and a study at the limits stores alike on SQLite and PostgreSQL."""

import io
import time
import tracemalloc
import zipfile

import numpy as np
import openpyxl
import pandas as pd
import pytest

from doe import limits
from doe.design import read_design
from doe.errors import DesignError, StudyError
from doe.generators import augment, generate
from doe.runs import read_results
from doe.study import Factor, Response, Study
from tests.conftest import EXAMPLE


def _cont(n, prefix="X"):
    return [Factor(f"{prefix}{i}", "continuous", 0, 1) for i in range(n)]


def _cat(name, n):
    return Factor(name, "categorical", levels=[f"L{i}" for i in range(n)])


def _small() -> Study:
    return Study("s", [Factor("A", "continuous", 0, 10), _cat("M", 3)], [Response("Y")])


# -- the study ------------------------------------------------------------------------------
@pytest.mark.parametrize("make, fragment", [
    (lambda: Study("s", _cont(limits.MAX_FACTORS + 1)), f"51 factors; the limit is {limits.MAX_FACTORS}"),
    (lambda: Study("s", [_cat("M", limits.MAX_LEVELS + 1)]), f"101 levels; the limit is {limits.MAX_LEVELS}"),
    (lambda: Study("s", [_cat("M", 20_000)]), "20,000 levels; the limit is 100"),
    (lambda: Study("s", [Factor("D", "discrete", levels=list(range(101)))]), "101 levels"),
    (lambda: Study("s", _cont(2), [Response(f"Y{i}") for i in range(limits.MAX_RESPONSES + 1)]),
     f"51 responses; the limit is {limits.MAX_RESPONSES}"),
    (lambda: Study("s", [Factor("A" * 101, "continuous", 0, 1)]), "101 characters; the limit is 100"),
    (lambda: Study("s" * 201, _cont(2)), "The study name"),
    (lambda: Study("s", [Factor("A", "continuous", 0, 1, units="u" * 101)]), "The units of factor 'A'"),
    (lambda: Study("s", [Factor("M", "categorical", levels=["a", "b" * 101])]), "A level of factor 'M'"),
    (lambda: Study("s", _cont(2), [Response("Y", units="%" * 101)]), "The units of response 'Y'"),
    (lambda: Study("s", _cont(2), blocks="B" * 101), "The block column name"),
])
def test_study_limits_are_refused_with_the_number_and_the_limit(make, fragment):
    with pytest.raises(StudyError) as exc:
        make()
    assert fragment in str(exc.value), str(exc.value)


def test_constraint_count_and_length_limits():
    from doe.constraints import Constraint

    many = [Constraint(expr=f"X0 > {i / 1000}") for i in range(limits.MAX_CONSTRAINTS + 1)]
    with pytest.raises(StudyError, match="51 constraints; the limit is 50"):
        Study("s", _cont(2), constraints=many)
    long = Constraint(expr=" + ".join(["X0"] * 200) + " > 1")
    with pytest.raises(StudyError, match="A constraint .* the limit is 500"):
        Study("s", _cont(2), constraints=[long])


def test_a_study_whose_quadratic_model_is_too_big_is_refused():
    """Pages describe the default model before any design exists: it must stay cheap to build."""
    t = time.perf_counter()
    with pytest.raises(StudyError, match="quadratic model of 12,011,176 columns; the limit is 100,000"):
        Study("s", [_cat(f"C{i}", 100) for i in range(50)])
    assert time.perf_counter() - t < 1
    from doe.generators import default_runs

    t = time.perf_counter()
    study = Study("s", [_cat(f"C{i}", 40) for i in range(9)])  # under the limit: 55,108 columns
    assert default_runs(study) > 50_000 and time.perf_counter() - t < 3


def test_a_study_at_the_limits_is_valid():
    study = Study("s" * limits.MAX_STUDY_NAME_CHARS,
                  [_cat("M" * limits.MAX_NAME_CHARS, limits.MAX_LEVELS), *_cont(limits.MAX_FACTORS - 1)],
                  [Response(f"Y{i}") for i in range(limits.MAX_RESPONSES)])
    assert len(study.factors) == limits.MAX_FACTORS


def test_a_study_file_over_the_size_limit_is_refused_before_parsing():
    text = "name: s\ndescription: " + "x" * limits.MAX_STUDY_FILE_CHARS + "\n"
    t = time.perf_counter()
    with pytest.raises(StudyError, match="characters; the limit is"):
        Study.from_yaml(text)
    assert time.perf_counter() - t < 0.5


# -- design generation --------------------------------------------------------------------
def test_a_big_model_is_refused_before_anything_is_allocated():
    study = Study("s", [_cat(f"C{i}", 100) for i in range(5)])  # valid: 5 factors, 100 levels each
    tracemalloc.start()
    t = time.perf_counter()
    with pytest.raises(DesignError, match="columns; the limit for a design search is 600"):
        generate(study, "optimal", seed=1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert time.perf_counter() - t < 2 and peak < 20 * 2**20, (time.perf_counter() - t, peak)


def test_an_optimal_search_over_the_memory_bound_is_refused_naming_it():
    study = Study("s", _cont(30))  # quadratic in 30 factors: 496 columns, 500 runs, 150 candidates
    t = time.perf_counter()
    with pytest.raises(DesignError, match="284 MB of candidate settings .* the limit is 256 MB"):
        generate(study, "optimal", seed=1)
    assert time.perf_counter() - t < 2
    limits.check_design_work(Study("s", _cont(25)), "optimal", {})  # 351 columns: 119 MB, allowed


def test_a_linear_model_of_the_same_study_is_made():
    study = Study("s", [_cat("C", 30), *_cont(3)])
    design = generate(study, "optimal", model="linear", seed=1, starts=1)
    assert design.n_runs == 1 + 29 + 3 + 4


@pytest.mark.parametrize("kind, options, fragment", [
    ("lhs", {"runs": limits.MAX_DESIGN_RUNS + 1}, "10,001 runs; the limit is 10,000"),
    ("lhs", {"runs": 100, "replicates": 200}, "20,000 runs; the limit is 10,000"),
    ("lhs", {"runs": 2_001}, "draws 2,001 points; the limit is 2,000"),
    ("optimal", {"runs": 20_000}, "20,000 runs; the limit is 10,000"),
])
def test_run_counts_over_the_limit_are_refused(kind, options, fragment):
    with pytest.raises(DesignError, match=fragment):
        generate(_small(), kind, seed=1, **options)


def test_a_ccd_repeated_at_too_many_categorical_combinations_is_refused():
    study = Study("s", [*_cont(2), _cat("M", 100), _cat("N", 100), _cat("P", 2)])
    with pytest.raises(DesignError, match="20,000 combinations of categorical levels"):
        generate(study, "ccd", seed=1)


def test_augment_is_checked_too():
    design = generate(_small(), "optimal", seed=1, starts=1)
    with pytest.raises(DesignError, match="runs; the limit is 10,000"):
        augment(design, limits.MAX_DESIGN_RUNS, seed=1)


def test_the_example_is_within_every_bound():
    study = Study.load(EXAMPLE)
    limits.check_design_work(study, "optimal", {})
    assert limits.prefetch_allowed(study)


def test_prefetch_is_allowed_only_for_small_studies():
    assert not limits.prefetch_allowed(Study("s", [_cat("C", 100), *_cont(20)]))
    assert not limits.prefetch_allowed(Study("s", _cont(40)))
    # a study built past the limits (e.g. restored from an old store) is never prefetched either
    big = Study("s", _cont(2))
    big.factors.append(Factor("C", "categorical", levels=[f"L{i}" for i in range(20_000)]))
    assert not limits.prefetch_allowed(big)


def test_the_page_does_not_start_the_background_design_for_a_big_study(monkeypatch):
    import streamlit as st

    import pages._app.speed as speed

    started = []
    monkeypatch.setattr(speed, "_served", lambda: True)
    monkeypatch.setattr(speed, "_thread", lambda work, name: started.append(name))
    monkeypatch.setitem(speed._warm, "first", None)  # past the warm-up: work starts its own thread
    monkeypatch.setattr(st, "session_state", {"study": Study("s", [_cat("C", 100), *_cont(20)]),
                                              "_next_seed": 5})
    speed.prefetch_default_design()
    assert started == []
    monkeypatch.setattr(st, "session_state", {"study": Study.load(EXAMPLE), "_next_seed": 6})
    speed.prefetch_default_design()
    assert started == ["doe-prefetch-design"]


# -- uploads ------------------------------------------------------------------------------
def _csv(header, rows):
    return ("\n".join([",".join(header)] + [",".join(map(str, r)) for r in rows]) + "\n").encode()


def _error(data, name="r.csv", study=None):
    up = read_results(study or _small(), data, name)
    assert not up.ok
    return up.errors[0].message


def test_too_many_columns_are_refused_before_the_table_is_built():
    header = ["Run", "A", "M", "Y"] + [f"extra{i}" for i in range(limits.MAX_COLUMNS)]
    message = _error(_csv(header, [[1, 5, "L0", 1.0] + [""] * limits.MAX_COLUMNS]))
    assert "1,004 columns" in message and "the limit is 1,000" in message, message


def test_a_long_cell_is_refused_naming_line_and_column():
    message = _error(_csv(["Run", "A", "M", "Y", "Notes"], [[1, 5, "L0", 1.0, "n" * 10_001]]))
    assert "line 2, column 5, has 10,001 characters; the limit is 10,000" in message, message


def test_a_cell_over_the_csv_modules_field_limit_gives_a_message_not_an_internal_error():
    data = b"Run,A,M,Y,Notes\n1,5,L0,1.0,\"" + b"x" * 200_000 + b"\"\n"
    message = _error(data)
    assert "has more characters than can be read" in message or "the limit is 10,000" in message, message


def test_an_unclosed_quote_running_to_the_end_is_a_message():
    data = b"Run,A,M,Y,Notes\n1,5,L0,1.0,\"" + b"x\n" * 100_000
    message = _error(data)
    assert "limit is 10,000" in message or "never closed" in message, message


def test_too_many_cells_are_refused():
    rows = [[i, 5, "L0", 1.0] + [1] * 96 for i in range(11_001)]  # 1,100,100 cells in 11,001 rows
    message = _error(_csv(["Run", "A", "M", "Y"] + [f"e{j}" for j in range(96)], rows))
    assert "more than 1,100,000 cells" in message, message
    rows = rows[:2_600]  # 260,000 cells: over the Excel limit
    message = _error(_xlsx([["Run", "A", "M", "Y"] + [f"e{j}" for j in range(96)]] + rows), "cells.xlsx")
    assert "more than 250,000 cells; the limit for an Excel file" in message, message


def test_the_largest_design_reads_back_from_its_stored_csv():
    from doe.design import make_design

    study = Study("s", _cont(limits.MAX_FACTORS), [Response(f"Y{i}") for i in range(limits.MAX_RESPONSES)])
    U = np.random.default_rng(1).uniform(-1, 1, (limits.MAX_DESIGN_RUNS, limits.MAX_FACTORS))
    design = make_design(study, U, "space-filling", ["space-filling"] * len(U),
                         blocks=np.arange(len(U)) % 2, seed=1)
    t = time.perf_counter()
    again = read_design(study, design.table.to_csv(index=False).encode(), "stored.csv")
    assert again.n_runs == limits.MAX_DESIGN_RUNS and time.perf_counter() - t < 10
    up = read_results(study, design.to_csv().encode(), "sheet.csv")  # 10,000 x 105 cells
    assert up.ok, up.summary()


def test_a_long_header_and_a_long_run_id_are_refused():
    message = _error(_csv(["Run", "A", "M", "Y", "h" * 201], [[1, 5, "L0", 1.0, ""]]))
    assert "201 characters; the limit is 200" in message, message
    message = _error(_csv(["Run", "A", "M", "Y"], [["r" * 101, 5, "L0", 1.0]]))
    assert "run id has 101 characters; the limit is 100" in message, message


def _xlsx(rows):
    wb = openpyxl.Workbook()
    for r in rows:
        wb.active.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def test_an_xlsx_whose_members_unpack_past_the_limit_is_refused_unread():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/worksheets/sheet1.xml", b"\0" * (limits.MAX_XLSX_UNCOMPRESSED + 1))
    message = _error(buf.getvalue(), "bomb.xlsx")
    assert "unpacks to 32 MB; the limit is 32 MB" in message, message


def test_an_xlsx_with_too_many_columns_is_refused():
    message = _error(_xlsx([["Run", "A", "M", "Y"] + [f"e{j}" for j in range(limits.MAX_COLUMNS)]]), "w.xlsx")
    assert "1,004 columns" in message, message


def test_an_xlsx_reads_as_before():
    up = read_results(_small(), _xlsx([["Run", "A", "M", "Y"], [1, 5, "L0", 1.5], [2, 10, "L2", None]]), "ok.xlsx")
    assert up.ok, up.summary()
    assert list(up.table["M"]) == ["L0", "L2"] and up.table["Y"].iloc[0] == 1.5


def test_an_xlsx_with_a_huge_claimed_dimension_reads_its_real_cells():
    data = _xlsx([["Run", "A", "M", "Y"], [1, 5, "L0", 1.5]])
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        files = {n: z.read(n) for n in z.namelist()}
    sheet = files["xl/worksheets/sheet1.xml"].decode()
    files["xl/worksheets/sheet1.xml"] = sheet.replace('<dimension ref="A1:D2"/>',
                                                      '<dimension ref="A1:XFD1048576"/>').encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n, b in files.items():
            z.writestr(n, b)
    t = time.perf_counter()
    up = read_results(_small(), buf.getvalue(), "dim.xlsx")
    assert up.ok and len(up.table) == 1, up.summary()
    assert time.perf_counter() - t < 3


def test_read_design_uses_the_same_limits():
    header = ["Run", "A", "M"] + [f"e{i}" for i in range(20_000)]
    t = time.perf_counter()
    with pytest.raises(DesignError, match="20,003 columns"):
        read_design(_small(), _csv(header, [[1, 5, "L0"] + [""] * 20_000]), "wide.csv")
    assert time.perf_counter() - t < 5
    design = read_design(_small(), _csv(["Run", "A", "M"], [[1, 5, "L0"], [2, 0, "L1"]]), "d.csv")
    assert design.n_runs == 2 and list(design.table["M"]) == ["L0", "L1"]


# -- the same limits on SQLite and PostgreSQL ------------------------------------------------------
def _at_the_limits() -> tuple[Study, pd.DataFrame]:
    study = Study("S" * limits.MAX_STUDY_NAME_CHARS,
                  [Factor("F" * limits.MAX_NAME_CHARS, "categorical",
                          levels=["a" * limits.MAX_NAME_CHARS, "b"]), Factor("A", "continuous", 0, 1)],
                  [Response("R" * limits.MAX_NAME_CHARS, units="u" * limits.MAX_NAME_CHARS)])
    sheet = pd.DataFrame({"Run": ["r" * limits.MAX_RUN_ID_CHARS, "2"],
                          study.factors[0].name: ["a" * limits.MAX_NAME_CHARS, "b"], "A": [0.0, 1.0],
                          study.responses[0].name: [1.0, 2.0], "Notes": ["", ""],
                          "h" * limits.MAX_HEADER_CHARS: ["x", "y"]})
    return study, sheet


def _store_at_the_limits(url):
    from doe.store import Store

    study, sheet = _at_the_limits()
    up = read_results(study, sheet.to_csv(index=False).encode(), "limits.csv")
    assert up.ok, up.summary()
    store = Store.open(url)
    try:
        store.save_study(study, "u" * 200)
        store.append_runs(study.name, up.table, "u" * 200)
        table = up.table.copy()
        table.loc[1, study.responses[0].name] = 3.0  # a modified run: the column name is an audit field
        store.append_runs(study.name, table.iloc[[1]], "u" * 200, reason="r" * 500)
        runs = store.runs(study.name)
        assert len(runs) == 2 and store.load_study(study.name).name == study.name
    finally:
        store.close()


def test_a_study_at_the_limits_stores_on_sqlite(tmp_path):
    _store_at_the_limits(f"sqlite:///{tmp_path / 'doe.sqlite'}")


@pytest.mark.postgres
def test_a_study_at_the_limits_stores_on_postgresql(pg_url):
    _store_at_the_limits(pg_url)


def test_limits_module_documents_every_limit():
    import inspect

    source = inspect.getsource(limits)
    names = [n for n in dir(limits) if n.startswith(("MAX_", "PREFETCH_"))]
    assert "MAX_STUDY_MODEL_COLUMNS" in names
    assert len(names) > 15
    for n in names:
        assert "#: " in source.split(f"\n{n} =")[0].rsplit("\n\n", 1)[-1], f"{n} has no comment saying why"
    assert np.isfinite(limits.MAX_SEARCH_CELLS)
