"""Every size limit on user input, in one place, and the checks that apply them before work starts.

A study, an upload or a design request is checked against these numbers before anything is parsed
in full, allocated or computed, so that no input a viewer can send (a study with 20,000 levels, a
CSV with 20,000 columns, an XLSX zip bomb) can take a server down. Each limit is far above what a
real bioprocess study needs; a refusal names the limit, the value found and what to do.

Text lengths follow the database: study, design and user names and audit fields are
``String(200)`` and run ids ``String(100)`` (doe/store/_models.py). PostgreSQL refuses longer
text while SQLite stores it, so a study valid here must fit those columns to store (and move in a
bundle) alike on both.
"""

from __future__ import annotations

import io
import math
import unicodedata
import zipfile
from typing import TYPE_CHECKING, Any

from doe.errors import DesignError, DoeError
from doe.model import ModelMatrix, Term, default_model, max_power, parse_model

if TYPE_CHECKING:
    from doe.study import Study

# -- the study ----------------------------------------------------------------------------
#: Factors in one study. Screening designs for bioprocesses rarely vary more than ~20 factors; 50
#: keeps every design type's tables small (a quadratic model in 50 factors has 1,326 terms).
MAX_FACTORS = 50
#: Levels of one categorical or discrete factor. Media, cell lines or donor lots in a study are
#: counted in tens; 100 keeps a categorical factor's model columns (levels - 1) in the hundreds.
MAX_LEVELS = 100
#: CQAs (responses) in one study: each is fitted and plotted separately, and 50 is far above the
#: handful a process has.
MAX_RESPONSES = 50
#: Constraints in one study: each is evaluated on every candidate point of a design search.
MAX_CONSTRAINTS = 50
#: Characters of a constraint expression: a readable rule is one line; the bound also keeps
#: Python's parser (which the constraint reader uses) far from its nesting limit.
MAX_EXPRESSION_CHARS = 500
#: Characters of the study name: the database column ``studies.name`` is ``String(200)``.
MAX_STUDY_NAME_CHARS = 200
#: Characters of a factor, CQA or block column name, a level and a unit. Names head run-sheet
#: columns and audit fields (``String(200)``); 100 is readable in a table header and fits.
MAX_NAME_CHARS = 100
#: Characters of a study, factor or CQA description (free text kept in the study file).
MAX_DESCRIPTION_CHARS = 5_000
#: Characters of a study file (YAML). Pure-Python YAML parses ~200 kB a second, so this keeps any
#: study file under ~3 s to read; a study at every limit above is ~100 kB without descriptions.
MAX_STUDY_FILE_CHARS = 512 * 1024
#: Columns of the study's quadratic model (counted from the levels: a categorical factor of L levels
#: gives L - 1 columns, and each pair of factors the product of theirs). Pages build the default
#: model to describe it before any design exists; 100,000 columns take ~0.1 s and ~10 MB to build,
#: while 50 categorical factors of 100 levels would give 12 million.
MAX_STUDY_MODEL_COLUMNS = 100_000
#: Nesting depth of a study file (YAML) or a JSON value read with a study: a study is 4 levels
#: deep (study > factors > factor > levels); 20 leaves room and stops a parser's deep recursion.
MAX_NESTING = 20

# -- uploads (results files and run sheets) -------------------------------------------------
#: Bytes of an uploaded results file or run sheet: a run sheet is a few kB.
MAX_UPLOAD_BYTES = 20 * 2**20
#: Data rows of an upload: far above any experiment's number of runs.
MAX_ROWS = 50_000
#: Columns of an upload: a run sheet has the factors, the CQAs and a few more (at most ~110 with
#: every limit above reached); 1,000 leaves room for extra columns a lab keeps.
MAX_COLUMNS = 1_000
#: Characters of one cell: a note is a few sentences. Python's csv module refuses fields over
#: ``csv.field_size_limit()`` (131,072) with an error; this gives a message first.
MAX_CELL_CHARS = 10_000
#: Characters of a column header: headers become audit fields, ``String(200)`` in the database.
MAX_HEADER_CHARS = 200
#: Characters of a run id: the database column ``runs.label`` is ``String(100)``.
MAX_RUN_ID_CHARS = 100
#: Cells (rows x columns) of a CSV file, counted while reading and stopped past this many: the run
#: sheet of the largest design (MAX_DESIGN_RUNS runs x 105 columns: Run, StdOrder, block, PointType,
#: 50 factors, 50 CQAs and Notes), which a stored design is read back from, fits.
MAX_CELLS = 1_100_000
#: Cells of an Excel sheet: openpyxl parses ~70,000 cells a second, so this keeps any Excel upload
#: to a few seconds (10,000 runs x 25 columns); a bigger run sheet can be uploaded as CSV.
MAX_XLSX_CELLS = 250_000
#: Declared uncompressed bytes of all members of an XLSX file, checked in the zip directory before
#: anything is decompressed: a sheet of MAX_XLSX_CELLS cells is ~10 MB of XML; a zip bomb claims
#: gigabytes.
MAX_XLSX_UNCOMPRESSED = 32 * 2**20
#: Members of an XLSX archive: a workbook has about ten.
MAX_XLSX_MEMBERS = 1_000

# -- design generation ----------------------------------------------------------------------
#: Runs of a generated design (replicates and centre points included).
MAX_DESIGN_RUNS = 10_000
#: Points of a maximin Latin hypercube (the runs, or 8 times the runs with constraints): each of its
#: 20 iterations computes every pairwise distance, 2 million at 2,000 points (16 MB); 10,000 points
#: would take 400 MB and half a minute.
MAX_LHS_POINTS = 2_000
#: Model columns of a design's model: the information matrix is columns x columns and an optimal
#: design needs more runs than columns.
MAX_MODEL_COLUMNS = 600
#: Floats the optimal-design search holds for its candidate moves (runs x candidate settings x
#: model columns): 32 Mi floats are 256 MB, the most one search may take.
MAX_SEARCH_CELLS = 32 * 2**20
#: Study size under which the Design page computes its default design in the background before it
#: is asked for (candidate moves x model columns^2, a measure of one exchange pass): bigger studies
#: are computed only when the user presses Generate design, which checks the limits above.
PREFETCH_MAX_WORK = 50_000_000

#: Characters refused in names, levels and units: NUL and other control characters (invisible,
#: and cut text short in C libraries) and the bidirectional overrides and isolates (U+202A-U+202E,
#: U+2066-U+2069), which make text display in another order than it is stored ("Trojan source").
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}


def bad_character(text: str) -> str | None:
    """A description of the first control or bidirectional-override character in ``text``, or None.

    >>> bad_character("Agitation") is None
    True
    >>> bad_character("pH\\u202e")
    'the bidirectional-override character U+202E'
    """
    for ch in text:
        if ch in _BIDI:
            return f"the bidirectional-override character U+{ord(ch):04X}"
        if unicodedata.category(ch) == "Cc":
            return "a NUL character" if ch == "\x00" else f"the control character U+{ord(ch):04X}"
    return None


def count_limit(what: str, found: int, limit: int, fix: str) -> str | None:
    """The message for ``found`` items of ``what`` over ``limit``, or None when within it."""
    if found <= limit:
        return None
    return f"The study has {found:,} {what}; the limit is {limit:,}. {fix}"


def check_xlsx_archive(data: bytes, name: str) -> None:
    """Refuse an XLSX file whose zip directory declares more than :data:`MAX_XLSX_UNCOMPRESSED`
    bytes (or :data:`MAX_XLSX_MEMBERS` members), before anything is decompressed.

    Python's zip reader stops at the declared size of a member (and then reports a bad CRC), so a
    member that lies about its size cannot decompress past this bound either.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            members = z.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise DoeError(f"'{name}' cannot be read as an Excel workbook ({exc}); save it again as "
                       ".xlsx or CSV.") from None
    if len(members) > MAX_XLSX_MEMBERS:
        raise DoeError(f"'{name}' holds {len(members):,} files inside; an Excel workbook holds about "
                       f"ten (limit {MAX_XLSX_MEMBERS:,}). Save it again from Excel, or as CSV.")
    total = sum(m.file_size for m in members)
    if total > MAX_XLSX_UNCOMPRESSED:
        raise DoeError(f"'{name}' unpacks to {total / 2**20:,.0f} MB; the limit is "
                       f"{MAX_XLSX_UNCOMPRESSED // 2**20} MB (a run sheet is well under 1 MB). "
                       "Upload the run sheet alone, or save it as CSV.")


def check_json_depth(value: Any, what: str, limit: int = MAX_NESTING) -> None:
    """Refuse a parsed JSON or YAML value nested deeper than ``limit`` (iteratively: no recursion).

    ``json.loads`` itself raises RecursionError on very deep text; :func:`load_json` turns that into
    the same message.
    """
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            raise DoeError(f"{what} is nested {depth} levels deep or more; the limit is {limit}. "
                           "A study is a few levels deep: check the file.")
        stack.extend((c, depth + 1) for c in children)


def load_json(text: str | bytes, what: str, limit: int = MAX_NESTING) -> Any:
    """``json.loads`` with the nesting of the result limited and a message instead of an internal
    error for deep, broken or non-finite JSON."""
    import json

    def no_constant(word: str) -> Any:
        raise ValueError(f"'{word}' is not a finite number")

    try:
        value = json.loads(text, parse_constant=no_constant)
    except RecursionError:
        raise DoeError(f"{what} is nested too deeply; the limit is {limit} levels.") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DoeError(f"{what} is not valid JSON: {exc}.") from None
    check_json_depth(value, what, limit)
    return value


# -- design work ---------------------------------------------------------------------------
def quadratic_columns(study: Study) -> int:
    """Model columns of the study's quadratic model (an upper bound of the default models), from the
    level counts alone, without building the model: used before anything is allocated."""
    sizes = [1 if f.kind != "categorical" else len(f.levels) - 1 for f in study.factors]
    numeric = sum(f.kind != "categorical" for f in study.factors)
    pairs = (sum(sizes) ** 2 - sum(s * s for s in sizes)) // 2
    return 1 + sum(sizes) + numeric + pairs


def _candidates(study: Study, terms: list[Term] | None = None) -> int:
    """Candidate settings of one run in the optimal search (doe.optimal._candidate_levels): the
    levels of each categorical or discrete factor; for a continuous factor 2, 5 for a squared term
    or 21 (the fine grid) for a cubic term or a factor named in a constraint. Without the model
    terms, 21 per continuous factor (the most)."""
    constrained = {n for c in study.constraints for n in getattr(c, "_names", {}).values()}
    out = 0
    for f in study.factors:
        if f.kind != "continuous":
            out += len(f.levels)
        elif terms is None or f.name in constrained or max_power(terms, f.name) >= 3:
            out += 21
        else:
            out += 5 if max_power(terms, f.name) == 2 else 2
    return out


def _count(n: int) -> str:
    """A count for a message: '12,345', or 'about 10^40' past a trillion."""
    return f"{n:,}" if n < 10**12 else f"about 10^{len(str(n)) - 1}"


def _whole(value: Any, default: int) -> int:
    try:
        return max(0, int(value)) if value is not None else default
    except (TypeError, ValueError, OverflowError):
        return default  # the generator itself reports a value that is not a whole number


def check_design_work(study: Study, kind: str, options: dict[str, Any] | None = None,
                      fixed_runs: int = 0) -> None:
    """Refuse, before anything is allocated, a design request too large to compute safely.

    Checks the number of runs asked for (with replicates and centre points), the model's columns,
    the categorical combinations a CCD or Box-Behnken design is repeated at, and the memory of the
    optimal-design search (:data:`MAX_SEARCH_CELLS`). Raises DesignError saying what to reduce.
    """
    options = dict(options or {})
    kind = str(kind).strip().lower()
    replicates = max(1, _whole(options.get("replicates"), 1))
    runs = _whole(options.get("runs"), 0)
    center = _whole(options.get("center"), 0)
    asked = (runs + center) * replicates + fixed_runs
    if asked > MAX_DESIGN_RUNS:
        raise DesignError(f"The design would have {asked:,} runs; the limit is {MAX_DESIGN_RUNS:,}. "
                          "Ask for fewer runs, replicates or centre points.")
    if kind in ("ccd", "bbd"):
        combos = math.prod(len(f.levels) for f in study.factors if f.is_categorical)
        if combos * replicates > MAX_DESIGN_RUNS:
            raise DesignError(
                f"A {'central composite' if kind == 'ccd' else 'Box-Behnken'} design is repeated at "
                f"each of the {_count(combos)} combinations of categorical levels; the limit is "
                f"{MAX_DESIGN_RUNS:,} runs. Use an optimal design.")
    if kind == "lhs":
        points = (runs or max(10, 2 * len(study.factors) + 2)) * (8 if study.constraints else 1)
        if points > MAX_LHS_POINTS:
            raise DesignError(
                f"A Latin hypercube of {runs:,} runs{' with constraints (8 candidates a run)' if study.constraints else ''} "
                f"draws {points:,} points; the limit is {MAX_LHS_POINTS:,}. Ask for fewer runs, or use an "
                "optimal design.")
    if kind not in ("optimal", "augment"):
        return
    estimate = quadratic_columns(study)
    if estimate > 50 * MAX_MODEL_COLUMNS:  # not even built: the level counts alone are too many
        p, terms = estimate, None
    else:
        terms = parse_model(study, options.get("model") or default_model(study, "optimal"))
        p = ModelMatrix(study, terms, n_blocks=max(1, _whole(options.get("blocks"), 1))).p
    if p > MAX_MODEL_COLUMNS:
        raise DesignError(f"The model has {_count(p)} columns; the limit for a design search is "
                          f"{MAX_MODEL_COLUMNS:,}. Choose a smaller model (e.g. 'interactions' or "
                          "'linear'), or fewer factors or levels.")
    new_runs = max(runs or p + 4, 1)
    candidates = _candidates(study, terms)
    cells = new_runs * candidates * p
    if new_runs + fixed_runs > MAX_DESIGN_RUNS:
        raise DesignError(f"The design would have {new_runs + fixed_runs:,} runs; the limit is "
                          f"{MAX_DESIGN_RUNS:,}. Choose a smaller model or fewer runs.")
    if cells > MAX_SEARCH_CELLS:
        raise DesignError(
            f"This design search would hold {cells * 8 / 2**20:,.0f} MB of candidate settings "
            f"({new_runs:,} runs x {candidates:,} candidate settings x {p:,} model columns); the limit "
            f"is {MAX_SEARCH_CELLS * 8 // 2**20} MB. Choose a smaller model (e.g. 'interactions'), "
            "fewer runs, or fewer factors or levels.")


def prefetch_allowed(study: Study) -> bool:
    """True when the default design of ``study`` is small enough to compute in the background before
    anybody asks for it (see :data:`PREFETCH_MAX_WORK`); computed from the level counts alone."""
    if len(study.factors) > MAX_FACTORS or any(len(f.levels) > MAX_LEVELS for f in study.factors):
        return False
    p = quadratic_columns(study)
    if p > MAX_MODEL_COLUMNS:
        return False
    return _candidates(study) * p * p <= PREFETCH_MAX_WORK
