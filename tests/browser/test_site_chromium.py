"""The leaderboard site in headless Chromium: pages load cleanly, tables sort and filter, no XSS runs.

The site is built from the committed store (``leaderboards/``, or ``$TOKBENCH_SITE_TEST_STORE``);
the XSS checks use a copy of it plus hostile records made here (never committed). Needs Debian's
``chromium`` (``apt-get install -y chromium``) and the ``websocket-client`` package; a screenshot
of the recon page is saved to ``reports/site-screenshot.png``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("websocket", reason="websocket-client is not installed: pip install websocket-client")

from cdp import Browser, find_chromium

from tokbench.records import make_record_id
from tokbench.report.site import build_site
from tokbench.store import RecordStore

REPO_ROOT = Path(__file__).resolve().parents[2]
# The committed store; TOKBENCH_SITE_TEST_STORE points the test at another one (for local checks).
COMMITTED_STORE = Path(os.environ.get("TOKBENCH_SITE_TEST_STORE", REPO_ROOT / "leaderboards"))
SCREENSHOTS = REPO_ROOT / "reports"
CHROMIUM = find_chromium()
EVIL = "<script>alert(1)</script>"
EVIL_IMG = '<img src=x onerror="window.__xss = 1; alert(2)">'
XSS_HASH = "e" * 64

pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None, reason="Debian chromium is not installed: apt-get install -y chromium"
    ),
    pytest.mark.slow,
]


def hostile_record(name: str, spec: str, psnr: float, source: str = "reproduced", **extra) -> dict:
    """A recon record of a protocol version newer than any committed one, so it is on recon.html."""
    return {
        "schema_version": 1,
        "record_id": make_record_id("recon", XSS_HASH, spec),
        "source": source,
        "suite": {"name": "recon", "version": "9999", "config": {"metrics": [{"name": "psnr"}]}},
        "protocol_hash": XSS_HASH,
        "protocol": {"dataset": {"name": EVIL_IMG}},
        "model": {"name": name, "spec": spec, "arguments": {"note": "</script><script>alert(3)</script>"}},
        "dataset": {"name": EVIL_IMG, "items_used": 4, "items_skipped": 1},
        "metrics": {"psnr": psnr, "bits_per_pixel": psnr / 20},
        "skipped": [{"item": EVIL, "reason": EVIL_IMG}],
        "created_at": "2026-01-01T00:00:00Z",
        **extra,
    }


@pytest.fixture(scope="module")
def browser():
    with Browser(CHROMIUM) as chromium:
        yield chromium


@pytest.fixture(scope="module")
def committed_site(tmp_path_factory) -> Path:
    records = RecordStore(COMMITTED_STORE).records(suite="recon")
    sources = {record["source"] for record in records}
    assert sources == {"reproduced", "reported"}, (
        f"the committed store {COMMITTED_STORE} should hold reproduced and reported recon records, "
        f"it has {sources or 'none'}"
    )
    return build_site(COMMITTED_STORE, tmp_path_factory.mktemp("committed") / "site").out


@pytest.fixture(scope="module")
def xss_site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("xss")
    store = root / "store"
    if COMMITTED_STORE.is_dir():
        shutil.copytree(COMMITTED_STORE, store, ignore=shutil.ignore_patterns(".*"))
    records = [
        hostile_record(EVIL, EVIL, 21.0),
        hostile_record("jpeg", "jpeg:quality=20", 27.0),
        hostile_record("jpeg", "jpeg:quality=80", 35.0),
        hostile_record("webp", "webp:quality=50", 31.0),
        hostile_record(
            "Evil-Tok",
            "Evil-Tok",
            30.0,
            source="reported",
            citation={"title": EVIL, "url": "javascript:alert(4)", "table": EVIL_IMG},
        ),
    ]
    for record in records:
        RecordStore(store).add(record)
    return build_site(store, root / "site").out


def pages_of(site: Path) -> list[Path]:
    """Index and suite pages first, then the record pages."""
    return sorted(site.rglob("*.html"), key=lambda path: (path.parent != site, path.as_posix()))


def assert_clean(report) -> None:
    assert not report.errors, f"{report.url}: {report.errors}"
    assert not report.dialogs, f"{report.url} opened a dialog: {report.dialogs}"


def column_values(browser: Browser, table: str, column: int) -> list[str]:
    return browser.evaluate(
        f"Array.from(document.querySelectorAll({json.dumps(table + ' tbody tr')}))"
        f".filter(r => !r.hidden).map(r => r.cells[{column}])"
        ".map(c => c.getAttribute('data-sort') ?? c.textContent)"
    )


def check_numeric_sort(browser: Browser, table: str) -> None:
    """Click the first numeric metric header twice: rows must come out ascending, then descending."""
    column = browser.evaluate(
        f"Array.from(document.querySelectorAll({json.dumps(table + ' thead th')}))"
        ".findIndex(th => th.dataset.type === 'num' && /[↑↓]/.test(th.textContent))"
    )
    assert column >= 0, f"{table} has no sortable metric column"
    header = f"{table} thead th:nth-child({column + 1}) button"
    before = column_values(browser, table, column)
    for direction in ("ascending", "descending"):
        browser.click(header)
        state = browser.evaluate(f"document.querySelector({json.dumps(header)}).parentElement.ariaSort")
        assert state == direction
        values = column_values(browser, table, column)
        numbers = [float(v.replace("Infinity", "inf")) for v in values if v != ""]
        assert numbers == sorted(numbers, reverse=direction == "descending"), (direction, values)
        assert values[len(numbers) :] == [""] * (len(values) - len(numbers)), "missing values must sort last"
        assert sorted(values) == sorted(before)


def test_committed_store_site_loads_cleanly_and_has_rows(browser: Browser, committed_site: Path):
    for path in pages_of(committed_site):
        report = browser.load(path.as_uri(), settle_seconds=0.3 if path.parent == committed_site else 0.05)
        assert_clean(report)
        rows = browser.evaluate("document.querySelectorAll('table.board tbody tr').length")
        if path.parent == committed_site:
            assert rows > 0, f"{path.name} has a table without rows"
        if path.name != "index.html" and path.parent == committed_site:
            figures = browser.evaluate("document.querySelectorAll('.figure .main-svg').length")
            expected = browser.evaluate("document.querySelectorAll('script.plotly-figure').length")
            assert figures >= expected, f"{path.name}: {expected} figures embedded, {figures} drawn"
    browser.load((committed_site / "recon.html").as_uri())
    reproduced = browser.evaluate("document.querySelectorAll('#board-recon tbody tr').length")
    reported = browser.evaluate("document.querySelectorAll('table.board.reported tbody tr').length")
    assert reproduced > 0 and reported > 0
    colours = browser.evaluate(
        "[document.querySelector('#board-recon tbody tr'), document.querySelector('table.reported tbody tr')]"
        ".map(r => getComputedStyle(r.closest('table')).backgroundColor)"
    )
    assert colours[0] != colours[1], "reported rows must look different from reproduced rows"
    browser.screenshot(SCREENSHOTS / "site-screenshot.png")


def test_sorting_works_in_the_committed_recon_tables(browser: Browser, committed_site: Path):
    assert_clean(browser.load((committed_site / "recon.html").as_uri()))
    check_numeric_sort(browser, "#board-recon")
    check_numeric_sort(browser, "table.board.reported")
    assert_clean(browser.report("after sorting"))


def test_sorting_and_filtering_on_known_rows(browser: Browser, xss_site: Path):
    assert_clean(browser.load((xss_site / "recon.html").as_uri()))
    psnr = browser.evaluate(
        "Array.from(document.querySelectorAll('#board-recon thead th'))"
        ".findIndex(th => th.textContent.startsWith('psnr'))"
    )
    header = f"#board-recon thead th:nth-child({psnr + 1}) button"
    models = (
        "Array.from(document.querySelectorAll('#board-recon tbody tr'))"
        ".filter(r => !r.hidden).map(r => r.cells[1].textContent.trim())"
    )
    assert browser.evaluate(models) == [
        "jpeg:quality=80",
        "webp:quality=50",
        "jpeg:quality=20",
        EVIL,
    ]  # by rank
    browser.click(header)
    assert browser.evaluate(models) == [EVIL, "jpeg:quality=20", "webp:quality=50", "jpeg:quality=80"]
    browser.click(header)
    assert browser.evaluate(models)[0] == "jpeg:quality=80"
    browser.type_text("[data-board] input[data-filter-text]", "jpeg")
    assert browser.evaluate(models) == ["jpeg:quality=80", "jpeg:quality=20"]
    assert (
        browser.evaluate("document.querySelector('[data-board] [data-count]').textContent") == "2 of 4 rows"
    )
    assert_clean(browser.report("after filtering"))


def test_hostile_strings_render_as_text_and_never_run(browser: Browser, xss_site: Path):
    evil_id = make_record_id("recon", XSS_HASH, EVIL)
    reported_id = make_record_id("recon", XSS_HASH, "Evil-Tok")
    for name in ("recon.html", f"records/{evil_id}.html", f"records/{reported_id}.html", "index.html"):
        report = browser.load((xss_site / name).as_uri())
        assert_clean(report)
        assert browser.evaluate("window.__xss === undefined"), f"{name}: an injected handler ran"
        text = browser.evaluate("document.body.innerText")
        if name != "index.html":
            assert EVIL in text, f"{name} does not show the model name as text"
        injected = browser.evaluate(
            "Array.from(document.scripts).filter(s => !s.src && s.type !== 'application/json').length"
            " + document.querySelectorAll('img, iframe, object, embed, [onerror], [onload]').length"
            " + document.querySelectorAll('a[href^=\"javascript\" i]').length"
        )
        assert injected == 0, f"{name} contains injected elements"
    browser.load((xss_site / "recon.html").as_uri())
    browser.screenshot(Path(xss_site) / "xss-screenshot.png")


def test_the_psnr_column_is_visible_without_horizontal_scrolling_at_1280px(
    browser: Browser, committed_site: Path
):
    assert_clean(browser.load((committed_site / "recon.html").as_uri()))
    geometry = browser.evaluate(
        """(() => {
          const heads = Array.from(document.querySelectorAll('#board-recon thead th'));
          const psnr = heads.find(th => th.textContent.startsWith('psnr'));
          const wrap = psnr.closest('.table-wrap').getBoundingClientRect();
          const cell = document.querySelector('#board-recon tbody tr').cells[heads.indexOf(psnr)];
          return {
            viewport: window.innerWidth, scrollX: window.scrollX, right: psnr.getBoundingClientRect().right,
            cellRight: cell.getBoundingClientRect().right, wrapRight: wrap.right,
            wrapScroll: psnr.closest('.table-wrap').scrollLeft,
          };
        })()"""
    )
    assert geometry["viewport"] == 1280, geometry
    assert geometry["scrollX"] == 0 and geometry["wrapScroll"] == 0, geometry
    visible = min(geometry["viewport"], geometry["wrapRight"])
    assert geometry["right"] <= visible and geometry["cellRight"] <= visible, geometry
