"""Hostile inputs a viewer can send cannot take a server down: each is refused (or read) within a
stated time and memory bound, with a message for the user, never an internal error.

Each input is handled in a fresh Python process that reports the seconds the handling took and its
peak resident memory (VmHWM, imports included: ~115 MB for numpy, pandas and openpyxl).
The bounds, for every input: under 5 seconds (each reading of it) and under 300 MB. Before these limits a 200 kB study
with 20,000 levels drove the background design to 18.6 GB, a 189 kB XLSX zip bomb took 36 s and
1 GB, and a 169 kB CSV with 20,000 columns ran for over 600 s.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zipfile

import openpyxl
import pytest

from tests.conftest import ROOT

MAX_SECONDS = 5.0
MAX_MB = 300

# The child: imports what a server has loaded, then times one handling of the input.
CHILD = r"""
import json, resource, sys, time
import numpy, pandas, openpyxl  # noqa: F401  (loaded in a server before any upload)
from doe import limits
from doe.errors import DoeError
from doe.study import Study, Factor, Response
from doe.runs import read_results
from doe.design import read_design
import doe.generators, doe.optimal, doe.cli  # noqa: F401

case, path = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()
small = Study("s", [Factor("A", "continuous", 0, 10), Factor("M", "categorical", levels=["a", "b"])],
              [Response("Y")])
t = time.perf_counter()
messages, first = [], 0.0
if case == "study":
    try:
        Study.from_yaml(data.decode())
    except DoeError as exc:
        messages.append(str(exc))
    big = Study("s", [Factor("A", "continuous", 0, 1)])  # a study restored past the limits
    big.factors.append(Factor("C", "categorical", levels=[f"L{i}" for i in range(20_000)]))
    messages.append(f"prefetch {limits.prefetch_allowed(big)}")
    try:
        doe.generators.generate(big, "optimal", seed=1)
    except DoeError as exc:
        messages.append(str(exc))
    import contextlib, io as _io
    err = _io.StringIO()
    with contextlib.redirect_stderr(err):
        code = doe.cli.main(["design", path, "--type", "optimal", "--out", path + ".csv"])
    messages.append(f"cli {code} {err.getvalue().strip()}")
elif case in ("csv", "xlsx"):  # a results upload, then the same file read as a design
    up = read_results(small, data, "upload." + case)
    messages.append(" | ".join(p.message for p in up.errors) or "ok")
    first, t = time.perf_counter() - t, time.perf_counter()
    try:
        read_design(small, data, "design." + case)
        messages.append("design ok")
    except DoeError as exc:
        messages.append(str(exc))
elif case == "json":
    try:
        limits.load_json(data, "The study in the bundle")
    except DoeError as exc:
        messages.append(str(exc))
seconds = max(time.perf_counter() - t, first)
try:  # this process's own peak (ru_maxrss would also count the parent's memory at the fork)
    with open("/proc/self/status") as f:
        mb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
except OSError:
    mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "mb": mb, "messages": messages}))
"""


def _handle(tmp_path, case: str, data: bytes, name: str) -> dict:
    path = tmp_path / name
    path.write_bytes(data)
    proc = subprocess.run([sys.executable, "-c", CHILD, case, str(path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["seconds"] < MAX_SECONDS, out
    assert out["mb"] < MAX_MB, out
    assert not any("internal error" in m or "Traceback" in m for m in out["messages"]), out
    return out


def _xlsx_with_sheet(sheet_xml_chunks, n: int) -> bytes:
    """A real workbook whose first sheet's XML is replaced by ``n`` copies of the chunk, streamed
    into the zip (the test never holds the unpacked sheet)."""
    wb = openpyxl.Workbook()
    wb.active.append(["Run", "A", "M", "Y"])
    src = io.BytesIO()
    wb.save(src)
    out = io.BytesIO()
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if info.filename != "xl/worksheets/sheet1.xml":
                zout.writestr(info, zin.read(info.filename))
                continue
            with zout.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as f:
                f.write(b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
                        b"<sheetData>")
                for _ in range(n):
                    f.write(sheet_xml_chunks)
                f.write(b"</sheetData></worksheet>")
    return out.getvalue()


_ROWS = b'<row><c t="inlineStr"><is><t>x</t></is></c><c><v>1</v></c><c><v>2</v></c></row>' * 1000


def test_a_study_with_20000_levels(tmp_path):
    levels = ", ".join(f"L{i}" for i in range(20_000))
    text = f"schema: 1\nname: s\nfactors:\n  - {{name: C, kind: categorical, levels: [{levels}]}}\n"
    assert len(text) > 140_000
    out = _handle(tmp_path, "study", text.encode(), "levels.yaml")
    study_msg, prefetch, generate_msg, cli = out["messages"]
    assert "20,000 levels; the limit is 100" in study_msg
    assert prefetch == "prefetch False"
    assert "columns; the limit for a design search is 600" in generate_msg
    assert cli.startswith("cli 2 ") and "20,000 levels" in cli


def test_a_csv_with_20000_columns(tmp_path):
    header = ",".join(["Run", "A", "M", "Y"] + [f"col{i}" for i in range(20_000)])
    data = (header + "\n" + "1,5,a,1" + "," * 20_000 + "\n").encode()
    assert 150_000 < len(data) < 200_000
    out = _handle(tmp_path, "csv", data, "wide.csv")
    assert "20,004 columns" in out["messages"][0] and "the limit is 1,000" in out["messages"][0], out
    assert "20,004 columns" in out["messages"][1], out


def test_an_xlsx_zip_bomb(tmp_path):
    data = _xlsx_with_sheet(_ROWS * 64, 50)  # 256 MB of sheet XML in under 1 MB
    assert len(data) < 1_000_000
    out = _handle(tmp_path, "xlsx", data, "bomb.xlsx")
    assert "unpacks to" in out["messages"][0] and "the limit is 32 MB" in out["messages"][0], out
    assert "unpacks to" in out["messages"][1], out


def test_an_xlsx_zip_bomb_that_lies_about_its_sizes(tmp_path):
    """The zip directory claims a small sheet: the zip reader stops at the claimed size."""
    data = bytearray(_xlsx_with_sheet(_ROWS * 64, 20))  # 100 MB of sheet XML
    name = b"xl/worksheets/sheet1.xml"
    central = data.rfind(b"PK\x01\x02" + data[data.find(b"PK\x01\x02") + 4:][:0])
    pos = 0
    while True:  # every central-directory entry of the sheet: claim 4 MB, with no zip64 extra
        pos = data.find(b"PK\x01\x02", pos)
        if pos < 0:
            break
        n_len = struct.unpack("<H", data[pos + 28:pos + 30])[0]
        if bytes(data[pos + 46:pos + 46 + n_len]) == name:
            struct.pack_into("<II", data, pos + 20, 4_000_000 // 1000, 4_000_000)
        pos += 4
    assert central >= 0
    out = _handle(tmp_path, "xlsx", bytes(data), "liar.xlsx")
    assert out["messages"][0] != "ok", out
    assert "design ok" not in out["messages"], out


def test_an_xlsx_within_the_size_limit_with_too_many_rows(tmp_path):
    data = _xlsx_with_sheet(_ROWS, 80)  # 80,000 rows, ~6 MB of XML
    out = _handle(tmp_path, "xlsx", data, "rows.xlsx")
    assert "more than 50,000 rows" in out["messages"][0], out


def test_an_xlsx_claiming_a_million_rows_and_columns(tmp_path):
    far = b'<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>'
    data = _xlsx_with_sheet(b'<row r="1"><c r="A1" t="inlineStr"><is><t>Run</t></is></c></row>' + far, 1)
    out = _handle(tmp_path, "xlsx", data, "far.xlsx")
    assert "columns" in out["messages"][0] or "rows" in out["messages"][0], out


def test_a_csv_with_a_huge_field(tmp_path):
    data = b'Run,A,M,Y,Notes\n1,5,a,1,"' + b"x" * (19 * 2**20) + b'"\n'
    out = _handle(tmp_path, "csv", data, "field.csv")
    assert "the limit is 10,000 per cell" in out["messages"][0], out


def test_a_csv_with_an_unclosed_quote_to_the_end(tmp_path):
    data = b'Run,A,M,Y,Notes\n1,5,a,1,"' + b"x,1,2\n" * 3_000_000
    out = _handle(tmp_path, "csv", data, "quote.csv")
    assert "per cell" in out["messages"][0] or "never closed" in out["messages"][0], out


@pytest.mark.parametrize("depth", [20_000, 250_000])
def test_deep_yaml(tmp_path, depth):
    text = "schema: 1\nname: s\nfactors: " + "[" * depth + "]" * depth + "\n"
    out = _handle(tmp_path, "study", text.encode(), "deep.yaml")
    assert "nested more than 20 levels" in out["messages"][0] or "the limit is 524,288" in out["messages"][0], out


def test_deep_json(tmp_path):
    out = _handle(tmp_path, "json", b"[" * 5_000_000 + b"]" * 5_000_000, "deep.json")
    assert "nested too deeply" in out["messages"][0], out
