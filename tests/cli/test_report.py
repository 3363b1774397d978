"""`bitfusion report`: a plan run stored in SQLite, rendered as one HTML page, looked at in headless
Chromium: the page must be self-contained and its plots visibly drawn.

BITFUSION_BIN points at the built command. Chromium is optional on a developer's machine (the
screenshot test is skipped without it) but required under CI=true.
"""
import json
import os
import re
import shutil
import struct
import subprocess
import zlib

import pytest

from cli_helpers import run

# Colours the report's CSS gives its plots (src/experiment/html_report.cc).
FRAME = (0x87, 0x95, 0xA8)  # the plot area's 1-pixel frame, drawn crisp
WHITE = (255, 255, 255)  # the page, outside every plot area
LINES = [(0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E), (0x2C, 0xA0, 0x2C), (0xD6, 0x27, 0x28),
         (0x94, 0x67, 0xBD), (0x8C, 0x56, 0x4B), (0xE3, 0x77, 0xC2), (0x17, 0xBE, 0xCF)]

SPIN = "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 0.2; echo BITFUSION_RESULT speed 100 ops/s"


def chromium():
    for name in (os.environ.get("BITFUSION_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    if os.environ.get("CI") == "true":
        pytest.fail("headless Chromium is required under CI=true (install the chromium package)")
    pytest.skip("no chromium to take the report's screenshot with")


def decode_png(data):
    """(width, height, rows of RGB tuples) of an 8-bit RGB or RGBA PNG, non-interlaced."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, []
    width = height = bpp = None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        ftype, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if ftype == 1:  # Sub
            for x in range(bpp, stride):
                line[x] = (line[x] + line[x - bpp]) & 255
        elif ftype == 2:  # Up
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif ftype == 3:  # Average
            for x in range(stride):
                left = line[x - bpp] if x >= bpp else 0
                line[x] = (line[x] + ((left + prev[x]) >> 1)) & 255
        elif ftype == 4:  # Paeth
            for x in range(stride):
                a = line[x - bpp] if x >= bpp else 0
                b = prev[x]
                c = prev[x - bpp] if x >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        else:
            assert ftype == 0, f"unknown PNG filter {ftype}"
        rows.append(list(zip(line[0::bpp], line[1::bpp], line[2::bpp])))
        prev = line
    return width, height, rows


def near(pixel, colour, tolerance):
    return all(abs(p - c) <= tolerance for p, c in zip(pixel, colour))


WHITE_KIND, FRAME_KIND, OTHER_KIND = -1, -2, -3


def kind(pixel):
    """WHITE_KIND, FRAME_KIND, the index of a line colour, or OTHER_KIND."""
    if pixel == WHITE:
        return WHITE_KIND
    if near(pixel, FRAME, 2):
        return FRAME_KIND
    for i, colour in enumerate(LINES):
        if near(pixel, colour, 24):
            return i
    return OTHER_KIND


def survey(rows):
    """White pixels, frame pixels, and per line colour the pixels that lie in a plot area: going
    left along their row, a frame pixel comes before any white one."""
    kinds = {}  # colour -> kind: a page has few distinct colours
    white = frame = 0
    inside_counts = [0] * len(LINES)
    for row in rows:
        inside = False
        for pixel in row:
            k = kinds.get(pixel)
            if k is None:
                k = kinds[pixel] = kind(pixel)
            if k == WHITE_KIND:
                white += 1
                inside = False
            elif k == FRAME_KIND:
                frame += 1
                inside = True
            elif k >= 0 and inside:
                inside_counts[k] += 1
    return white, frame, inside_counts


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    plan = tmp / "plan.json"
    plan.write_text(json.dumps({
        "name": "tiny",
        "runner": "process://",
        "metrics": {"sources": ["host"], "interval": "10ms"},
        "benchmarks": [{"name": "spin", "command": ["sh", "-c", SPIN], "repetitions": 3, "warmup": 1}],
    }))
    db = tmp / "results.db"
    run("run", str(plan), "--sink", f"sqlite://{db}", "--quiet", cwd=tmp, check=0)
    html = tmp / "report.html"
    run("report", str(db), "-o", str(html), cwd=tmp, check=0)
    return tmp, html


def test_report_is_self_contained_and_deterministic(report):
    tmp, html = report
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page.lower()
    assert not re.search(r"https?://", page), "the page names a URL"
    assert "url(" not in page and "<img" not in page and "<link" not in page
    assert page.count("<svg") == page.count("</svg>") > 0
    assert "<polyline" in page
    # The plan run: one benchmark, its metric, a warm-up and three measured runs.
    assert ">spin<" in page and ">speed<" in page
    assert "4 runs (1 warm-up, 0 not ok)" in page
    again = tmp / "again.html"
    run("report", str(tmp / "results.db"), "-o", str(again), cwd=tmp, check=0)
    assert again.read_bytes() == html.read_bytes()


def test_report_plots_are_drawn(report):
    browser = chromium()
    tmp, html = report
    png = tmp / "report.png"
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", f"--user-data-dir={tmp / 'chromium'}", f"--screenshot={png}",
         "--window-size=1200,3000", html.resolve().as_uri()],
        capture_output=True, text=True, timeout=180)
    assert png.exists(), f"no screenshot (exit {proc.returncode})\n{proc.stderr[-3000:]}"
    width, height, rows = decode_png(png.read_bytes())
    assert (width, height) == (1200, 3000)

    white, frame, counts = survey(rows)
    assert frame > 4000, f"only {frame} pixels of plot frames: no plots on the page?"
    assert white < 0.95 * width * height, "the page is (almost) blank"
    # Each time series plot draws lines over most of its width (lines with equal values hide
    # each other, so the colours are counted together); the strip plots' dots are drawn too.
    assert sum(counts) > 4000, f"line pixels inside plot areas per colour: {counts}"
    assert sum(1 for c in counts if c > 100) >= 2, f"lines of one colour only: {counts}"
