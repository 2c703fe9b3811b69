"""The study: factors, critical quality attributes (responses), blocks, constraints.

A study is saved as a versioned, human-readable YAML file::

    schema: 1
    name: MSC expansion
    factors:
      - {name: Medium, kind: categorical, levels: [FBS 10%, hPL 5%, SFM-XF]}
      - {name: Agitation, kind: continuous, low: 30, high: 90, units: rpm}
    responses:
      - {name: Viability, units: "%", goal: maximize, lower: 80}
    blocks: Block
    constraints:
      - "Surface == 'ULA' and Agitation > 60"

Continuous factors are coded to -1/+1 over [low, high]; discrete (numeric
levels) likewise over [min, max]; categorical factors use effect
(sum-to-zero) coding in models.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import yaml

from doe import limits
from doe._format import plain_whole
from doe.constraints import KINDS, Constraint, feasible
from doe.errors import StudyError, did_you_mean, quoted_list
from doe.recent import Recent

SCHEMA_VERSION = 1
FACTOR_KINDS = ("continuous", "categorical", "discrete")
GOALS = ("maximize", "minimize", "target", "range", "none")
#: Columns a run sheet reserves for itself; no factor or response may take these names.
RESERVED = ("Run", "StdOrder", "Block", "PointType", "Notes", "Intercept", "Whole plot", "Subplot")
#: The run-sheet column a split-plot design writes: runs that share a setting of the hard-to-change factors.
WHOLE_PLOT = "Whole plot"
#: The run-sheet column of a split-split-plot design: subplots nested in whole plots.
SUBPLOT = "Subplot"
#: Values of a factor's ``hard_to_change`` key: False (default, changes run to run), True (changes only
#: between whole plots) and "very" (split-split-plot: changes only between whole plots, while the True ones
#: change only between the subplots nested in them).
HARD_TO_CHANGE = (False, True, "very")
_FORBIDDEN_CHARS = set("+:*^[]~`\n\r\t")

_STUDY_KEYS = ("schema", "name", "description", "factors", "responses", "blocks", "random_effects",
               "constraints")
_FACTOR_KEYS = ("name", "kind", "low", "high", "levels", "units", "hard_to_change", "description")
_RESPONSE_KEYS = ("name", "units", "goal", "lower", "upper", "target", "weight",
                  "importance", "description")


@dataclass
class Factor:
    """A factor (process parameter or material attribute) the design varies."""

    name: str
    kind: str = "continuous"
    low: float | None = None
    high: float | None = None
    levels: list[Any] = field(default_factory=list)
    units: str = ""
    description: str = ""
    #: False, True (changes only between whole plots) or "very" (split-split-plot): see HARD_TO_CHANGE.
    hard_to_change: bool | str = False

    @property
    def is_categorical(self) -> bool:
        """True for a categorical factor (effect-coded levels, no numeric range)."""
        return self.kind == "categorical"

    @property
    def n_levels(self) -> int | None:
        """Number of levels, or None for a continuous factor."""
        return None if self.kind == "continuous" else len(self.levels)

    @property
    def center(self) -> float:
        """Midpoint of the numeric range (coded 0)."""
        low, high = self._numeric_range()
        return (low + high) / 2.0

    @property
    def half_range(self) -> float:
        """Half the numeric range (one coded unit)."""
        low, high = self._numeric_range()
        return (high - low) / 2.0

    def _numeric_range(self) -> tuple[float, float]:
        """(low, high) of a numeric factor; a categorical factor has none (TypeError, as arithmetic on
        its missing bounds raised before)."""
        if self.low is None or self.high is None:
            raise TypeError(f"Factor '{self.name}' has no numeric range (kind {self.kind}).")
        return self.low, self.high

    def to_coded(self, values: Any) -> np.ndarray:
        """Actual -> coded -1..+1 (numeric factors) or level index (categorical)."""
        if self.is_categorical:
            index = {str(v): i for i, v in enumerate(self.levels)}
            return np.array([index[str(v)] for v in np.asarray(values, dtype=object)], dtype=float)
        return (np.asarray(values, dtype=float) - self.center) / self.half_range

    def to_actual(self, coded: Any) -> np.ndarray:
        """Coded -1..+1 (or level index) -> actual values."""
        coded = np.asarray(coded, dtype=float)
        if self.is_categorical:
            return cast(np.ndarray, np.array(self.levels, dtype=object)[coded.astype(int)])
        return cast(np.ndarray, self.center + coded * self.half_range)

    def label(self) -> str:
        """Name with units, for axis titles and tables."""
        return f"{self.name} ({self.units})" if self.units else self.name

    def describe_range(self) -> str:
        """The factor's range or levels as text, with units: '30 to 90 rpm'."""
        if self.kind == "continuous":
            return f"{_fmt(self.low)} to {_fmt(self.high)} {self.units}".strip()
        return ", ".join(str(v) for v in self.levels) + (f" {self.units}" if self.units else "")

    def to_yaml(self) -> dict[str, Any]:
        """The factor as the study file writes it (a mapping)."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.kind == "continuous":
            out["low"], out["high"] = plain_whole(self.low), plain_whole(self.high)
        else:
            out["levels"] = [plain_whole(v) for v in self.levels]
        if self.units:
            out["units"] = self.units
        if self.hard_to_change:
            out["hard_to_change"] = self.hard_to_change
        if self.description:
            out["description"] = self.description
        return out


@dataclass
class Response:
    """A critical quality attribute (CQA) with its goal and spec limits."""

    name: str
    units: str = ""
    goal: str = "none"
    lower: float | None = None
    upper: float | None = None
    target: float | None = None
    weight: float = 1.0
    importance: float = 1.0
    description: str = ""

    def spec_text(self) -> str:
        """The specification in words, e.g. '>= 80 %', or 'no spec'."""
        u = f" {self.units}" if self.units else ""
        if self.lower is not None and self.upper is not None:
            return f"{_fmt(self.lower)} to {_fmt(self.upper)}{u}"
        if self.lower is not None:
            return f">= {_fmt(self.lower)}{u}"
        if self.upper is not None:
            return f"<= {_fmt(self.upper)}{u}"
        return "no spec"

    def described(self) -> str:
        """Name with its spec, for selectors: 'Viability (spec >= 80 %)'."""
        spec = self.spec_text()
        return f"{self.name} ({spec})" if spec == "no spec" else f"{self.name} (spec {spec})"

    def to_yaml(self) -> dict[str, Any]:
        """The response as the study file writes it (a mapping)."""
        out: dict[str, Any] = {"name": self.name}
        if self.units:
            out["units"] = self.units
        out["goal"] = self.goal
        for key in ("lower", "upper", "target"):
            if getattr(self, key) is not None:
                out[key] = plain_whole(getattr(self, key))
        if self.weight != 1.0:
            out["weight"] = plain_whole(self.weight)
        if self.importance != 1.0:
            out["importance"] = plain_whole(self.importance)
        if self.description:
            out["description"] = self.description
        return out


#: The product's word for a response.
CQA = Response


@dataclass(frozen=True)
class Study:
    """Factors, CQAs, optional block column name and constraints of one study.

    Frozen: a changed study is a new object (``Study.from_dict``, :func:`dataclasses.replace`), so a
    cache keyed by :attr:`digest` never holds a study that changed under it.
    """

    name: str
    factors: list[Factor]
    responses: list[Response] = field(default_factory=list)
    blocks: str | None = None
    constraints: list[Constraint] = field(default_factory=list)
    description: str = ""
    schema: int = SCHEMA_VERSION
    #: Run-sheet columns whose levels are random draws (donors, hPL or serum lots, incubators): each is a
    #: random intercept in the mixed-model analysis and its variance enters the design-space probability.
    random_effects: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.validate()

    # -- look-ups -------------------------------------------------------------
    @property
    def factor_names(self) -> list[str]:
        """The factor names, in the study order."""
        return [f.name for f in self.factors]

    @property
    def response_names(self) -> list[str]:
        """The response (CQA) names, in the study order."""
        return [r.name for r in self.responses]

    @property
    def hard_to_change_factors(self) -> list[str]:
        """Factors that change only between whole plots or subplots (both tiers), in the study order."""
        return [f.name for f in self.factors if f.hard_to_change]

    @property
    def very_hard_to_change_factors(self) -> list[str]:
        """Factors marked ``hard_to_change: very`` (split-split-plot whole-plot factors)."""
        return [f.name for f in self.factors if f.hard_to_change == "very"]

    @property
    def split_plot(self) -> bool:
        """True when some factor is hard to change: designs have whole plots, analyses a whole-plot error."""
        return any(f.hard_to_change for f in self.factors)

    @property
    def has_random_effects(self) -> bool:
        """True when the analysis has a random effect: a listed one or the whole plots of hard-to-change factors."""
        return bool(self.random_effects) or self.split_plot

    def factor(self, name: str) -> Factor:
        """The factor called ``name`` (StudyError naming the factors when there is none)."""
        for f in self.factors:
            if f.name == name:
                return f
        raise StudyError(
            f"Unknown factor '{name}'.{did_you_mean(name, self.factor_names)} "
            f"Factors are {quoted_list(self.factor_names)}."
        )

    def response(self, name: str) -> Response:
        """The response called ``name`` (StudyError naming the responses when there is none)."""
        for r in self.responses:
            if r.name == name:
                return r
        raise StudyError(
            f"Unknown response '{name}'.{did_you_mean(name, self.response_names)} "
            f"Responses are {quoted_list(self.response_names)}."
        )

    # -- validation -------------------------------------------------------------
    def validate(self) -> None:
        """Check the whole study; raise StudyError with the first problem found."""
        if not str(self.name).strip():
            raise StudyError("The study has no name: give it one (e.g. 'MSC expansion').")
        _check_sizes(self)
        if self.schema != SCHEMA_VERSION:
            raise StudyError(
                f"Study file schema {self.schema} is not supported; this version reads "
                f"schema {SCHEMA_VERSION}. Upgrade the software to open newer files."
            )
        if not self.factors:
            raise StudyError("The study has no factors: add at least one factor.")
        _check_names([f.name for f in self.factors], "factor")
        _check_names([r.name for r in self.responses], "response")
        clash = {f.name.lower() for f in self.factors} & {r.name.lower() for r in self.responses}
        if clash:
            raise StudyError(
                f"'{sorted(clash)[0]}' is both a factor and a response: names must be unique."
            )
        for f in self.factors:
            _validate_factor(f)
        for r in self.responses:
            _validate_response(r)
        columns = limits.quadratic_columns(self)
        if columns > limits.MAX_STUDY_MODEL_COLUMNS:
            raise StudyError(
                f"The factors and their levels give a quadratic model of {columns:,} columns; the limit is "
                f"{limits.MAX_STUDY_MODEL_COLUMNS:,}. Use fewer levels of the categorical factors (each "
                "pair of them multiplies their levels), or fewer factors.")
        if self.blocks is not None:  # normalised once, while the study is made (frozen afterwards)
            object.__setattr__(self, "blocks", str(self.blocks).strip() or None)
        if self.blocks:
            _check_text(self.blocks, "The block column name", limits.MAX_NAME_CHARS)
        if self.blocks and self.blocks.lower() in {f.name.lower() for f in self.factors}:
            raise StudyError(f"Block column '{self.blocks}' has the name of a factor; rename one.")
        _validate_random_effects(self)
        for c in self.constraints:
            if c.kind not in KINDS:
                raise StudyError(f"Constraint kind '{c.kind}' is unknown; use 'exclude' or 'require'.")
            if not str(c.expr).strip():
                raise StudyError("A constraint is empty: write an expression or remove it.")
            c.compile(self.factors)
        if self.constraints and not self.feasible(self.grid(levels=11, limit=50_000)).any():
            raise StudyError(
                "The constraints exclude every combination of factor settings: "
                "relax or remove one of them."
            )

    # -- settings ---------------------------------------------------------------
    def feasible(self, settings: pd.DataFrame) -> np.ndarray:
        """True for each row (actual units) that satisfies every constraint."""
        if not self.constraints or len(settings) == 0:
            return np.ones(len(settings), dtype=bool)
        cols = {f.name: settings[f.name].to_numpy() for f in self.factors}
        return feasible(self.constraints, cols)

    def grid(self, levels: int = 5, limit: int | None = None, seed: int = 0) -> pd.DataFrame:
        """Grid of settings in actual units: `levels` points per continuous factor.

        With ``limit`` set and a larger grid, a uniform random sample of
        ``limit`` grid points is returned instead.
        """
        axes = []
        for f in self.factors:
            if f.kind == "continuous":
                axes.append(list(np.linspace(*f._numeric_range(), levels)))
            else:
                axes.append(list(f.levels))
        total = math.prod(len(a) for a in axes)
        data: dict[str, Any]
        if limit is not None and total > limit:
            rng = np.random.default_rng(seed)
            idx = [rng.integers(0, len(a), size=limit) for a in axes]
            data = {f.name: np.array(a, dtype=object)[i] for f, a, i in zip(self.factors, axes, idx)}
        else:
            rows = list(itertools.product(*axes))
            data = {f.name: [r[j] for r in rows] for j, f in enumerate(self.factors)}
        df = pd.DataFrame(data)
        for f in self.factors:
            if not f.is_categorical:
                df[f.name] = df[f.name].astype(float)
        return df

    # -- persistence -----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The study as a mapping, in the order the study file writes it."""
        out: dict[str, Any] = {"schema": self.schema, "name": self.name}
        if self.description:
            out["description"] = self.description
        out["factors"] = [f.to_yaml() for f in self.factors]
        out["responses"] = [r.to_yaml() for r in self.responses]
        if self.blocks:
            out["blocks"] = self.blocks
        if self.random_effects:
            out["random_effects"] = list(self.random_effects)
        if self.constraints:
            out["constraints"] = [c.to_yaml() for c in self.constraints]
        return out

    @property
    def digest(self) -> str:
        """SHA-256 (hex) of :meth:`to_yaml`: equal exactly when the study text is, the content hash the
        store saves a study version with (doe.store.study_digest), and the key of the app's caches."""
        return hashlib.sha256(self.to_yaml().encode("utf-8")).hexdigest()

    def to_yaml(self) -> str:
        """The study file text (YAML)."""
        data = self.to_dict()
        key = repr(data)  # exact: types and order show in the repr
        text: str | None = _YAML_TEXT.get(key)
        if text is None:
            text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
            _YAML_TEXT.put(key, text)
        return text

    def save(self, path: str | Path) -> None:
        """Write the study file (YAML, UTF-8) to ``path``."""
        Path(path).write_text(self.to_yaml(), encoding="utf-8")

    @classmethod
    def from_dict(cls, data: Any) -> Study:
        """A study from a parsed study file (StudyError naming the first problem)."""
        if data is None:
            raise StudyError("The study file is empty: it needs 'name', 'factors' and 'responses'.")
        if not isinstance(data, dict):
            raise StudyError(
                "A study file must be a YAML mapping with keys like 'name', 'factors' and "
                "'responses'."
            )
        _check_keys(data, _STUDY_KEYS, "study")
        schema = data.get("schema", SCHEMA_VERSION)
        if not isinstance(schema, int) or isinstance(schema, bool):
            raise StudyError(f"'schema' must be a whole number (this version writes {SCHEMA_VERSION}).")
        factors = [_factor_from(d, i) for i, d in enumerate(_as_list(data.get("factors"), "factors"))]
        responses = [
            _response_from(d, i) for i, d in enumerate(_as_list(data.get("responses"), "responses"))
        ]
        constraints = [
            _constraint_from(c, i) for i, c in enumerate(_as_list(data.get("constraints"), "constraints"))
        ]
        blocks = data.get("blocks")
        if blocks is not None and not isinstance(blocks, str):
            raise StudyError("'blocks' must be the name of the block column, e.g. 'blocks: Block'.")
        random_effects = data.get("random_effects") or []
        if isinstance(random_effects, str):
            random_effects = [random_effects]
        if not isinstance(random_effects, list) or not all(isinstance(r, str) for r in random_effects):
            raise StudyError("'random_effects' must be a list of run-sheet column names, e.g. "
                             "'random_effects: [Donor, hPL lot]'.")
        return cls(
            name=_text(data.get("name", ""), "name"),
            description=_text(data.get("description", ""), "description"),
            factors=factors,
            responses=responses,
            blocks=blocks,
            constraints=constraints,
            schema=schema,
            random_effects=[r.strip() for r in random_effects],
        )

    @classmethod
    def from_yaml(cls, text: str) -> Study:
        """A study from study file text (a copy the caller may change; the parse is remembered)."""
        study: Study | None = _PARSED.get(text)
        if study is None:
            study = cls.from_dict(safe_yaml_load(text))
            _PARSED.put(text, study)
        return copy.deepcopy(study)  # the caller may edit its study; the remembered one stays as read

    @classmethod
    def load(cls, path: str | Path) -> Study:
        """A study from the study file at ``path``."""
        return cls.from_yaml(read_yaml_file(path, "Study file", StudyError))


# -- YAML ---------------------------------------------------------------------
#: Recently written and read study texts: the pages turn the same study into YAML (cache keys,
#: saved-state checks) and back many times per interaction, and YAML is slow in pure Python.
_YAML_TEXT, _PARSED = Recent(32), Recent(32)


class _NoAliasLoader(yaml.SafeLoader):
    """Safe loader that refuses anchors and aliases (no 'billion laughs'), a key given twice in one
    mapping (YAML would keep the last silently: ``lower: 80`` then ``lower: 10`` gives 10) and
    nesting deeper than :data:`doe.limits.MAX_NESTING` (the composer recurses per level)."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event: Any = self.peek_event()  # type: ignore[no-untyped-call]  # PyYAML's stubs leave it untyped
            raise StudyError(
                f"YAML aliases ('*{event.anchor}') are not allowed in a study file "
                f"(line {event.start_mark.line + 1}): write the values out."
            )
        if self._depth >= limits.MAX_NESTING:
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise StudyError(
                f"The study file is nested more than {limits.MAX_NESTING} levels deep (line "
                f"{event.start_mark.line + 1}); a study is a few levels deep: check the brackets "
                "and the indentation.")
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = key_node.value
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise StudyError(
                        f"The key '{_short(str(key))}' is given twice in one mapping (lines {seen[key]} "
                        f"and {line}); YAML would silently keep only the last value. Keep one.")
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def read_yaml_file(path: str | Path, what: str, error: type[Exception] = StudyError) -> str:
    """The text of a UTF-8 (optionally BOM-marked) YAML file; a missing or non-UTF-8 file raises ``error``."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} '{path}' does not exist.")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise error(f"{what} '{path}' is not UTF-8 text: save it as UTF-8 YAML.") from None


def safe_yaml_load(text: str) -> Any:
    """Parse YAML safely; syntax errors become a StudyError with the line."""
    if len(text) > limits.MAX_STUDY_FILE_CHARS:
        raise StudyError(f"The study file has {len(text):,} characters; the limit is "
                         f"{limits.MAX_STUDY_FILE_CHARS:,} (a study file is a few kB).")
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - safe loader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise StudyError(f"The study file is not valid YAML{where}: {exc.problem}.") from None
    except yaml.YAMLError as exc:
        raise StudyError(f"The study file is not valid YAML: {exc}.") from None


# -- helpers ------------------------------------------------------------------
def _fmt(x: Any) -> str:
    if isinstance(x, float) and x.is_integer():
        return f"{int(x):,}" if abs(x) >= 10_000 else str(int(x))
    return f"{x:g}" if isinstance(x, float) else str(x)


def _text(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise StudyError(f"'{what}' must be text.")
    return str(value)


def _as_list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise StudyError(f"'{what}' must be a list (one '- ' item per entry).")
    return value


def _check_keys(data: dict[str, Any], allowed: tuple[str, ...], what: str) -> None:
    for key in data:
        if key not in allowed:
            raise StudyError(
                f"Unknown key '{key}' in {what}.{did_you_mean(str(key), allowed)} "
                f"Allowed keys: {', '.join(allowed)}."
            )


def number_or_none(value: Any, what: str) -> float | None:
    """A finite float, None for a blank, or a StudyError naming ``what``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise StudyError(f"{what} must be a number, not {value}.")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise StudyError(f"{what} must be a number; got '{value}'.") from None
    if not math.isfinite(out):
        raise StudyError(f"{what} must be a finite number; got '{value}'.")
    return out


def _factor_from(d: Any, i: int) -> Factor:
    if not isinstance(d, dict):
        raise StudyError(f"Factor {i + 1} must be a mapping like {{name: Agitation, kind: continuous, ...}}.")
    _check_keys(d, _FACTOR_KEYS, f"factor {i + 1} ({d.get('name', '?')})")
    name = _text(d.get("name", ""), f"factor {i + 1} name").strip()
    kind = str(d.get("kind", "continuous")).strip().lower()
    levels = d.get("levels") or []
    if not isinstance(levels, list):
        raise StudyError(f"Factor '{name}': 'levels' must be a list, e.g. [FBS 10%, hPL 5%].")
    return Factor(
        name=name,
        kind=kind,
        low=number_or_none(d.get("low"), f"Factor '{name}' low"),
        high=number_or_none(d.get("high"), f"Factor '{name}' high"),
        levels=levels,
        units=_text(d.get("units", ""), f"factor '{name}' units"),
        description=_text(d.get("description", ""), f"factor '{name}' description"),
        hard_to_change=_hard_to_change(d.get("hard_to_change", False), name),
    )


def _hard_to_change(value: Any, name: str) -> bool | str:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("very", "true", "false", "yes", "no"):
        word = value.strip().lower()
        return "very" if word == "very" else word in ("true", "yes")
    raise StudyError(f"Factor '{name}': 'hard_to_change' must be true, false or 'very' (split-split-plot: "
                     f"changes only between whole plots); got '{value}'.")


def _validate_random_effects(study: Study) -> None:
    """Random-effect columns: named once, not a factor, response or the block column; the tiers make sense."""
    seen: set[str] = set()
    taken = {n.lower(): what for what, names in (("factor", study.factor_names),
                                                 ("response", study.response_names)) for n in names}
    for name in study.random_effects:
        _check_text(name, "A random-effect column name", limits.MAX_NAME_CHARS)
        if not name.strip():
            raise StudyError("A random-effect column name is empty: name the run-sheet column (e.g. Donor).")
        if name.lower() in seen:
            raise StudyError(f"Random effect '{name}' is listed twice in 'random_effects'.")
        seen.add(name.lower())
        if name.lower() in taken:
            raise StudyError(f"Random effect '{name}' has the name of a {taken[name.lower()]}: a random effect is "
                             "a run-sheet column of its own (e.g. Donor), rename one.")
        if study.blocks and name.lower() == study.blocks.lower():
            raise StudyError(f"'{name}' is both the block column and a random effect: list it in one place "
                             "only ('random_effects' treats its levels as random draws, 'blocks' as fixed).")
        if name.lower() in (WHOLE_PLOT.lower(), SUBPLOT.lower()):
            raise StudyError(f"'{name}' need not be listed in 'random_effects': a split-plot design's "
                             f"'{WHOLE_PLOT}' and '{SUBPLOT}' columns are random effects already.")
    for f in study.factors:
        if f.hard_to_change not in HARD_TO_CHANGE:
            raise StudyError(f"Factor '{f.name}': 'hard_to_change' must be true, false or 'very'.")
    if study.very_hard_to_change_factors and not any(f.hard_to_change is True for f in study.factors):
        raise StudyError("Some factors are 'very' hard to change but none is 'hard_to_change: true': a "
                         "split-split-plot needs both tiers; mark the very-hard-to-change ones 'true' instead.")


def _response_from(d: Any, i: int) -> Response:
    if not isinstance(d, dict):
        raise StudyError(f"Response {i + 1} must be a mapping like {{name: Viability, goal: maximize}}.")
    _check_keys(d, _RESPONSE_KEYS, f"response {i + 1} ({d.get('name', '?')})")
    name = _text(d.get("name", ""), f"response {i + 1} name").strip()
    weight = number_or_none(d.get("weight"), f"Response '{name}' weight")
    importance = number_or_none(d.get("importance"), f"Response '{name}' importance")
    return Response(
        name=name,
        units=_text(d.get("units", ""), f"response '{name}' units"),
        goal=str(d.get("goal", "none")).strip().lower(),
        lower=number_or_none(d.get("lower"), f"Response '{name}' lower"),
        upper=number_or_none(d.get("upper"), f"Response '{name}' upper"),
        target=number_or_none(d.get("target"), f"Response '{name}' target"),
        weight=1.0 if weight is None else weight,
        importance=1.0 if importance is None else importance,
        description=_text(d.get("description", ""), f"response '{name}' description"),
    )


def _constraint_from(c: Any, i: int) -> Constraint:
    if isinstance(c, str):
        return Constraint(expr=c)
    if isinstance(c, dict):
        kinds = [k for k in c if k in KINDS]
        extra = [k for k in c if k not in (*KINDS, "reason")]
        if len(kinds) != 1 or extra:
            raise StudyError(
                f"Constraint {i + 1} must be a string, or a mapping with one of "
                f"'exclude'/'require' and an optional 'reason'; got keys {quoted_list(c)}."
            )
        return Constraint(expr=str(c[kinds[0]]), kind=kinds[0], reason=str(c.get("reason", "")))
    raise StudyError(f"Constraint {i + 1} must be a text expression, e.g. \"Agitation > 60\".")


def _check_names(names: list[str], what: str) -> None:
    seen: dict[str, str] = {}
    for n in names:
        if not n:
            raise StudyError(f"A {what} has an empty name: every {what} needs a name.")
        bad = sorted(set(n) & _FORBIDDEN_CHARS)
        if bad:
            raise StudyError(
                f"The {what} name '{_short(n)}' contains {quoted_list(bad)}, which model formulas use; "
                "rename it (letters, digits, spaces, - / % . are fine)."
            )
        _check_text(n, f"The {what} name", limits.MAX_NAME_CHARS)
        if n in RESERVED or n.lower() in {r.lower() for r in RESERVED}:
            raise StudyError(f"'{n}' is a reserved run-sheet column; rename the {what}.")
        if n.lower() in seen:
            raise StudyError(f"Duplicate {what} name '{n}': each {what} needs a different name.")
        seen[n.lower()] = n


def _short(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _check_text(text: Any, what: str, longest: int, *, multiline: bool = False) -> None:
    """Refuse text over ``longest`` characters, or with a NUL, control or bidirectional-override
    character (tab and line breaks allowed in ``multiline`` text), naming the field."""
    text = "" if text is None else str(text)
    if len(text) > longest:
        raise StudyError(f"{what} '{_short(text)}' has {len(text):,} characters; the limit is {longest:,}. "
                         "Shorten it.")
    bad = limits.bad_character(text.replace("\n", "").replace("\t", "").replace("\r", "")
                               if multiline else text)
    if bad:
        shown = "".join(c if limits.bad_character(c) is None else "?" for c in _short(text))
        raise StudyError(f"{what} '{shown}' contains {bad}, which is not allowed (it is invisible or "
                         "changes how text is displayed): retype it without that character.")


def _check_finite(value: Any, what: str) -> None:
    if value is not None and not (isinstance(value, (int, float, np.integer, np.floating))
                                  and math.isfinite(float(value))):
        raise StudyError(f"{what} must be a finite number; got '{value}'.")


def _check_sizes(study: Study) -> None:
    """Counts and the study's own text, checked before anything else is validated or computed."""
    _check_text(study.name, "The study name", limits.MAX_STUDY_NAME_CHARS)
    _check_text(study.description, "The study description", limits.MAX_DESCRIPTION_CHARS, multiline=True)
    for message in (
        limits.count_limit("factors", len(study.factors), limits.MAX_FACTORS,
                           "Split the study, or screen the factors in a first study."),
        limits.count_limit("responses", len(study.responses), limits.MAX_RESPONSES,
                           "Keep the critical quality attributes; record others in Notes."),
        limits.count_limit("constraints", len(study.constraints), limits.MAX_CONSTRAINTS,
                           "Combine constraints with 'and' / 'or'."),
    ):
        if message:
            raise StudyError(message)
    for c in study.constraints:
        _check_text(c.expr, "A constraint", limits.MAX_EXPRESSION_CHARS)
        _check_text(c.reason, "The reason of a constraint", limits.MAX_DESCRIPTION_CHARS, multiline=True)


def _validate_factor(f: Factor) -> None:
    if f.kind not in FACTOR_KINDS:
        raise StudyError(
            f"Factor '{f.name}' has kind '{f.kind}'.{did_you_mean(f.kind, FACTOR_KINDS)} "
            f"Kinds are {', '.join(FACTOR_KINDS)}."
        )
    _check_text(f.units, f"The units of factor '{f.name}'", limits.MAX_NAME_CHARS)
    _check_text(f.description, f"The description of factor '{f.name}'", limits.MAX_DESCRIPTION_CHARS,
                multiline=True)
    if f.kind == "continuous":
        if f.low is None or f.high is None:
            raise StudyError(f"Continuous factor '{f.name}' needs both 'low' and 'high'.")
        for key in ("low", "high"):
            _check_finite(getattr(f, key), f"Factor '{f.name}' {key}")
        if f.low >= f.high:
            raise StudyError(
                f"Factor '{f.name}': low ({_fmt(f.low)}) must be less than high ({_fmt(f.high)})."
            )
        if f.levels:
            raise StudyError(
                f"Continuous factor '{f.name}' has 'levels'; use kind 'discrete' for numeric "
                "levels or 'categorical' for named levels."
            )
        return
    levels = list(f.levels)
    if len(levels) < 2:
        raise StudyError(f"Factor '{f.name}' needs at least 2 levels; it has {len(levels)}.")
    if len(levels) > limits.MAX_LEVELS:
        raise StudyError(
            f"Factor '{f.name}' has {len(levels):,} levels; the limit is {limits.MAX_LEVELS}. A design "
            "cannot cover that many levels in a feasible number of runs: group the levels, or make "
            "a numeric factor continuous.")
    if f.kind == "categorical":
        texts = [str(v).strip() for v in levels]
        if any(not t for t in texts):
            raise StudyError(f"Factor '{f.name}' has an empty level name.")
        for t in texts:
            _check_text(t, f"A level of factor '{f.name}'", limits.MAX_NAME_CHARS)
        if len({t.lower() for t in texts}) != len(texts):
            raise StudyError(f"Factor '{f.name}' has duplicate levels: {', '.join(texts)}.")
        f.levels = texts
        f.low = f.high = None
        return
    try:
        values = sorted(float(v) for v in levels)
    except (TypeError, ValueError):
        raise StudyError(
            f"Discrete factor '{f.name}' has a non-numeric level; use kind 'categorical' for "
            "named levels."
        ) from None
    for v in values:
        _check_finite(v, f"A level of discrete factor '{f.name}'")
    if len(set(values)) != len(values):
        raise StudyError(f"Discrete factor '{f.name}' has duplicate levels.")
    f.levels = [plain_whole(v) for v in values]
    f.low, f.high = values[0], values[-1]


def _validate_response(r: Response) -> None:
    _check_text(r.units, f"The units of response '{r.name}'", limits.MAX_NAME_CHARS)
    _check_text(r.description, f"The description of response '{r.name}'", limits.MAX_DESCRIPTION_CHARS,
                multiline=True)
    for key in ("lower", "upper", "target", "weight", "importance"):
        _check_finite(getattr(r, key), f"Response '{r.name}' {key}")
    if r.goal not in GOALS:
        raise StudyError(
            f"Response '{r.name}' has goal '{r.goal}'.{did_you_mean(r.goal, GOALS)} "
            f"Goals are {', '.join(GOALS)}."
        )
    if r.lower is not None and r.upper is not None and r.lower > r.upper:
        raise StudyError(
            f"Response '{r.name}': lower spec ({_fmt(r.lower)}) is above upper spec "
            f"({_fmt(r.upper)}); swap them."
        )
    if r.goal == "target":
        if r.target is None:
            raise StudyError(f"Response '{r.name}' has goal 'target' but no 'target' value.")
        if (r.lower is not None and r.target < r.lower) or (r.upper is not None and r.target > r.upper):
            raise StudyError(f"Response '{r.name}': target {_fmt(r.target)} lies outside its spec limits.")
    if r.goal == "range" and r.lower is None and r.upper is None:
        raise StudyError(f"Response '{r.name}' has goal 'range' but no 'lower' or 'upper' limit.")
    if r.weight <= 0 or r.importance <= 0:
        raise StudyError(f"Response '{r.name}': weight and importance must be positive.")
