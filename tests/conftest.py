import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
REFERENCE = ROOT.parent / "shared" / "reference-cases"
EXAMPLE = ROOT / "data" / "msc_expansion.yaml"


@pytest.fixture
def example_study():
    from doe.study import Study

    return Study.load(EXAMPLE)


@pytest.fixture
def cont_study():
    """Five continuous factors A..E on 0..10 and one response."""
    from doe.study import Study

    return Study.from_dict({
        "name": "five", "factors": [{"name": n, "low": 0, "high": 10} for n in "ABCDE"],
        "responses": [{"name": "Y"}],
    })


def make_study(factors, responses=None, **kw):
    from doe.study import Study

    return Study.from_dict({"name": "t", "factors": factors,
                            "responses": responses or [{"name": "Y"}], **kw})
