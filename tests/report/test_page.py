"""Tests for the offline HTML report: self-contained, escaped, one section per protocol hash."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tokbench.errors import ConfigError
from tokbench.report import write_report

OLD_HASH = "0" * 63 + "1"
NEW_HASH = "f" * 63 + "e"
EVIL = "<script>alert(1)</script>"
EVIL_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def make_record(
    name: str, spec: str, metrics: dict, protocol_hash: str = NEW_HASH, version: str = "2", day: int = 2
) -> dict:
    """A minimal schema-shaped record of suite ``recon``."""
    return {
        "schema_version": 1,
        "record_id": f"{day:020d}",
        "source": "reproduced",
        "suite": {"name": "recon", "version": version},
        "protocol_hash": protocol_hash,
        "model": {"name": name, "spec": spec, "arguments": {}, "kind": "tokenizer"},
        "dataset": {"name": "kodak", "items_used": 24, "items_skipped": 1},
        "metrics": metrics,
        "created_at": f"2026-01-{day:02d}T00:00:00Z",
    }


def report_records() -> list[dict]:
    """Ten records under the new protocol (one with an evil spec) and two under the old one."""
    new = [
        make_record("jpeg", f"jpeg:quality={q}", {"bits_per_pixel": q / 20, "psnr": 25 + q / 10, "ssim": 0.8})
        for q in (10, 30, 50, 70, 90)
    ]
    new[2]["metrics"]["psnr_ci95"] = 0.123456
    new += [
        make_record("webp", f"webp:quality={q}", {"bits_per_pixel": q / 25, "psnr": 27.0, "ssim": 0.85})
        for q in (20, 80)
    ]
    new.append(make_record("identity", "identity", {"bits_per_pixel": 24.0, "psnr": "inf", "ssim": 1.0}))
    new.append(make_record("vqgan", "vqgan:f=16", {"psnr": 22.0, "ssim": 0.55}))
    new.append(make_record(EVIL, EVIL, {"bits_per_pixel": 0.01, "psnr": 19.1, "ssim": 0.45}))
    old = [
        make_record("jpeg", f"jpeg:quality={q}", {"bits_per_pixel": 1.0, "psnr": 31.0}, OLD_HASH, "1", day=1)
        for q in (40, 60)
    ]
    return [*old, *new]


@pytest.fixture
def page(tmp_path: Path) -> str:
    """The text of a report written from ``report_records``."""
    out = write_report(report_records(), tmp_path / "sub" / "recon.html", suite="recon")
    assert out == tmp_path / "sub" / "recon.html"
    return out.read_text(encoding="utf-8")


def sections(page: str) -> list[str]:
    """The ``<section>`` bodies of the page, in order."""
    return re.findall(r"<section>(.*?)</section>", page, flags=re.DOTALL)


def test_page_is_self_contained(page: str):
    assert page.startswith("<!DOCTYPE html>")
    assert "<h1>tokbench report: recon</h1>" in page
    assert "Plotly.newPlot" in page
    assert '<script src="http' not in page
    assert re.search(r"<script[^>]*\bsrc=", page) is None
    inline_scripts = re.findall(r"<script[^>]*>(.*?)</script>", page, flags=re.DOTALL)
    assert max(len(script) for script in inline_scripts) > 1_000_000  # the plotly.js bundle
    assert page.count("function(") > 1000 and page.count("plotly.js v") >= 1


def test_one_table_row_per_record(page: str):
    new_section, old_section = sections(page)
    assert new_section.count("<tr><td>") == 10
    assert old_section.count("<tr><td>") == 2
    assert "<td><code>jpeg:quality=50</code></td>" in new_section
    assert '<td class="num">24</td><td class="num">1</td>' in new_section
    assert "30 ± 0.1235" in new_section
    assert '<td class="num">inf</td>' in new_section
    assert "2026-01-02T00:00:00Z" in new_section


def test_protocols_are_separated_latest_first(page: str):
    new_section, old_section = sections(page)
    assert f"suite version 2 · protocol <code>{NEW_HASH}</code>" in new_section
    assert f"suite version 1 · protocol <code>{OLD_HASH}</code>" in old_section
    assert OLD_HASH not in new_section and NEW_HASH not in old_section
    assert "jpeg:quality=40" not in new_section and "jpeg:quality=50" not in old_section
    assert new_section.count("Plotly.newPlot") == 1 and old_section.count("Plotly.newPlot") == 1
    summary = page[: page.index("<section>")]
    assert (
        f"<b>recon</b>, version (protocol hash): 2 (<code>{NEW_HASH}</code>), 1 (<code>{OLD_HASH}</code>)"
        in summary
    )


def test_excluded_records_are_annotated(page: str):
    new_section = sections(page)[0]
    # Plotly writes "<" as \u003c in its JSON, so the "<br>" joining annotation lines is \u003cbr\u003e.
    assert "1 record with psnr = inf not shown" in new_section
    assert "1 record without bits_per_pixel not shown" in new_section


def test_user_strings_are_escaped_everywhere(page: str):
    assert EVIL not in page
    assert EVIL_ESCAPED in page  # the table
    # Plotly's JSON leaves "&" alone and writes "<", ">" and "/" as \u003c, \u003e and \u002f,
    # so the escaped legend name and hover text appear as below inside Plotly.newPlot(...).
    assert '"name":"&lt;script&gt;alert(1)&lt;\\u002fscript&gt;"' in page
    decoded = page.replace("\\u003c", "<").replace("\\u003e", ">").replace("\\u002f", "/")
    assert EVIL not in decoded


def test_hostile_suite_and_title_are_escaped(tmp_path: Path):
    record = make_record("jpeg", "jpeg:quality=50", {"bits_per_pixel": 1.0, "psnr": 30.0})
    record["suite"]["name"] = EVIL
    record["suite"]["version"] = EVIL
    record["dataset"]["name"] = EVIL
    out = write_report([record], tmp_path / "r.html", suite=EVIL, title=EVIL)
    text = out.read_text(encoding="utf-8")
    assert EVIL not in text
    assert f"<title>{EVIL_ESCAPED}</title>" in text
    assert f"<td>{EVIL_ESCAPED}</td>" in text


def test_empty_records_raise_config_error(tmp_path: Path):
    with pytest.raises(ConfigError) as error:
        write_report([], tmp_path / "r.html", suite="recon", store=tmp_path / "store")
    assert str(error.value) == (
        f"no records for suite recon in store {tmp_path / 'store'}; run `tokbench run --suite recon` first"
    )
    assert not (tmp_path / "r.html").exists()


def test_records_of_another_suite_raise(tmp_path: Path):
    with pytest.raises(ConfigError, match="belongs to suite 'recon', not 'gen'"):
        write_report(report_records(), tmp_path / "r.html", suite="gen")


def test_write_is_atomic_and_overwrites(tmp_path: Path):
    out = tmp_path / "r.html"
    out.write_text("old", encoding="utf-8")
    write_report(report_records(), out, suite="recon", title="first")
    write_report(report_records(), out, suite="recon", title="second")
    assert "<h1>second</h1>" in out.read_text(encoding="utf-8")
    assert [path.name for path in tmp_path.iterdir()] == ["r.html"]


def test_unwritable_output_raises_config_error(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot write report"):
        write_report(report_records(), blocker / "r.html", suite="recon")


def test_report_is_deterministic(tmp_path: Path):
    first = write_report(report_records(), tmp_path / "a.html", suite="recon").read_text(encoding="utf-8")
    second = write_report(report_records(), tmp_path / "b.html", suite="recon").read_text(encoding="utf-8")
    assert first == second


def test_ci_without_its_metric_keeps_a_column(tmp_path: Path):
    record = make_record("jpeg", "jpeg:quality=50", {"bits_per_pixel": 1.0, "lpips_ci95": 0.01})
    text = write_report([record], tmp_path / "r.html", suite="recon").read_text(encoding="utf-8")
    assert "<th>lpips_ci95</th>" in text
    assert '<td class="num">0.01</td>' in text
