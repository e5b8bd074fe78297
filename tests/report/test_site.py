"""The static leaderboard site (tokbench/report/site.py): pages, escaping, reported rows, exports, history."""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from tokbench import catalog
from tokbench.errors import ConfigError, StoreError
from tokbench.records import make_record_id
from tokbench.report.figures import CorrelationPoint, rank_correlation_figure, spearman_rho
from tokbench.report.site import (
    build_site,
    correlation_points,
    escape_script_json,
    primary_metric,
    protocol_groups,
    rank_records,
    safe_url,
)
from tokbench.store import RecordStore

NEW_HASH = "a" * 64
OLD_HASH = "b" * 64
REPORTED_HASH = "c" * 64
EVIL = "<script>alert(1)</script>"
EVIL_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
EVIL_IMG = "<img src=x onerror=alert(2)>"
RECON_CONFIG = {"metrics": [{"name": "psnr"}, {"name": "ssim"}, {"name": "bits-per-pixel"}]}


def make_record(
    name: str,
    spec: str,
    metrics: dict,
    *,
    suite: str = "recon",
    version: str = "2",
    protocol_hash: str = NEW_HASH,
    source: str = "reproduced",
    day: int = 2,
    **extra,
) -> dict:
    """A valid record; ``extra`` adds or replaces top-level fields."""
    record = {
        "schema_version": 1,
        "record_id": make_record_id(suite, protocol_hash, spec),
        "source": source,
        "suite": {"name": suite, "version": version, "config": RECON_CONFIG if suite == "recon" else {}},
        "protocol_hash": protocol_hash,
        "protocol": {"dataset": {"name": "kodak", "items_requested": 24}, "preprocess": {"resolution": 256}},
        "preprocess": {"name": "imagenet-center-crop", "resolution": 256},
        "model": {"name": name, "spec": spec, "kind": "tokenizer", "arguments": {}, "weights_sha256": None},
        "dataset": {"name": "kodak", "items_requested": 24, "items_used": 24, "items_skipped": 0},
        "metrics": metrics,
        "skipped": [],
        "environment": {"torch": "2.4", "device": "cpu"},
        "created_at": f"2026-01-{day:02d}T00:00:00Z",
        **extra,
    }
    return record


def reported_record(name: str, metrics: dict, suite: str = "recon", **extra) -> dict:
    citation = {
        "title": "Some paper README",
        "url": "https://github.com/owner/repo",
        "table": "t.csv",
        "row": 2,
    }
    return make_record(
        name,
        name,
        metrics,
        suite=suite,
        version="paper",
        protocol_hash=REPORTED_HASH,
        source="reported",
        protocol={"kind": "reported", "source_table": "t.csv", "resolution": 256},
        citation=extra.pop("citation", citation),
        **extra,
    )


def store_records() -> list[dict]:
    """Reproduced jpeg/webp under the new protocol, an evil record, old-protocol jpeg and reported rows."""
    records = [
        make_record(
            "jpeg", f"jpeg:quality={q}", {"psnr": 25 + q / 10, "psnr_ci95": 0.5, "bits_per_pixel": q / 20}
        )
        for q in (10, 50, 90)
    ]
    records.append(make_record("webp", "webp:quality=50", {"psnr": 33.0, "bits_per_pixel": 1.0}))
    records.append(make_record("identity", "identity", {"psnr": "inf", "bits_per_pixel": 24.0}))
    evil = make_record(EVIL, EVIL, {"psnr": 19.5, "bits_per_pixel": 0.1})
    evil["dataset"]["name"] = EVIL_IMG
    evil["model"]["arguments"] = {"note": "</script><script>alert(3)</script>"}
    records.append(evil)
    records.append(
        make_record("jpeg", "jpeg:quality=10", {"psnr": 20.0}, version="1", protocol_hash=OLD_HASH, day=1)
    )
    records.append(reported_record("TiTok-L-32", {"rfid": 2.21, "num_tokens": 32}))
    records.append(
        reported_record(
            "Evil-Tok",
            {"rfid": 9.0},
            citation={"title": "</script><b>x</b>", "url": "javascript:alert(4)", "table": "t.csv"},
        )
    )
    return records


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    for record in store_records():
        RecordStore(root).add(record)
    return root


@pytest.fixture
def site(store: Path, tmp_path: Path) -> Path:
    summary = build_site(store, tmp_path / "site")
    assert summary.out == tmp_path / "site"
    return summary.out


def page(site: Path, name: str) -> str:
    return (site / name).read_text(encoding="utf-8")


def tables(text: str) -> dict[str, str]:
    """Each ``<table ... id="...">`` body by its id."""
    return dict(re.findall(r'<table class="[^"]*" id="([^"]+)">(.*?)</table>', text, flags=re.DOTALL))


def column(table: str, label_prefix: str) -> list[str]:
    """The text of one column (by header label prefix) in row order."""
    headers = re.findall(r"<button type=\"button\">(.*?)</button>", table)
    index = next(i for i, label in enumerate(headers) if label.startswith(label_prefix))
    rows = re.findall(r"<tr data-source[^>]*>(.*?)</tr>", table, flags=re.DOTALL)
    return [re.sub(r"<[^>]+>", "", re.findall(r"<td[^>]*>(.*?)</td>", row)[index]) for row in rows]


def test_build_writes_pages_records_assets_and_a_summary(store: Path, tmp_path: Path):
    summary = build_site(store, tmp_path / "site")
    out = summary.out
    assert summary.records == len(store_records())
    html_files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.html"))
    assert (
        summary.pages == len(html_files) == 3 + 1 + len(store_records())
    )  # index, coverage, recon, old recon, records
    assert "index.html" in html_files and "recon.html" in html_files and "coverage.html" in html_files
    assert f"recon@{OLD_HASH[:12]}.html" in html_files
    assert summary.bytes == sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert summary.bytes > 3_000_000  # plotly.min.js is part of the site
    assert summary.seconds > 0
    for asset in ("site.css", "site.js", "plotly.min.js"):
        assert (out / "assets" / asset).stat().st_size > 0
    for record in store_records():
        assert (out / "records" / f"{record['record_id']}.html").is_file()
        assert json.loads((out / "records" / f"{record['record_id']}.json").read_text())["record_id"]


def test_pages_use_relative_links_only(site: Path):
    for path in site.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        for link in re.findall(r'(?:href|src)="([^"]+)"', text):
            if link.startswith("https://"):
                continue  # citation links of reported rows
            assert not re.match(r"[a-z]+:", link), f"{path.name} links to {link}"
            target = (path.parent / link).resolve()
            assert target.is_file(), f"{path.relative_to(site)} links to missing {link}"


def test_index_lists_suites_with_counts_and_latest_protocol(site: Path):
    index = page(site, "index.html")
    assert '<a href="recon.html">recon</a>' in index
    assert f"recon v2 · {NEW_HASH[:12]}" in index


def test_suite_page_shows_protocol_version_and_hash(site: Path):
    recon = page(site, "recon.html")
    assert NEW_HASH in recon and "suite version</dt><dd>2" in recon
    assert f'href="recon@{OLD_HASH[:12]}.html"' in recon  # the older protocol is one click away
    old = page(site, f"recon@{OLD_HASH[:12]}.html")
    assert OLD_HASH in old and "older or other protocol" in old and 'href="recon.html"' in old
    assert old.count('data-source="reproduced"') == 1 and "TiTok-L-32" not in old


def test_evil_strings_are_escaped_everywhere(site: Path):
    evil_record = next(r for r in store_records() if r["model"]["name"] == EVIL)
    for path in site.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        assert EVIL not in text and EVIL_IMG not in text and 'href="javascript:' not in text
        assert "<b>x</b>" not in text
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert re.fullmatch(
                r'<script src="(\.\./)?assets/(site|plotly\.min)\.js">|'
                r'<script type="application/json" class="plotly-figure" data-target="figure-\d+">',
                tag,
            ), tag
        # A JSON block can only end at its own closing tag: no "</" inside it.
        for body in re.findall(r'class="plotly-figure"[^>]*>(.*?)</script>', text, flags=re.DOTALL):
            assert "<" not in body and ">" not in body
            json.loads(body)
    recon = page(site, "recon.html")
    assert EVIL_ESCAPED in recon
    detail = page(site, f"records/{evil_record['record_id']}.html")
    assert EVIL_ESCAPED in detail and "&lt;img src=x onerror=alert(2)&gt;" in detail
    assert "&lt;/script&gt;&lt;script&gt;alert(3)&lt;/script&gt;" in detail


def test_javascript_citation_url_is_shown_as_text_not_linked(site: Path):
    recon = page(site, "recon.html")
    assert 'href="javascript' not in recon
    assert 'href="https://github.com/owner/repo"' in recon


def test_reported_rows_are_in_their_own_unranked_table(site: Path):
    recon = page(site, "recon.html")
    boards = tables(recon)
    assert set(boards) == {"board-recon", "board-recon@reported"}
    reproduced, reported = boards["board-recon"], boards["board-recon@reported"]
    assert reproduced.count('data-source="reproduced"') == 6 and 'data-source="reported"' not in reproduced
    assert reported.count('data-source="reported"') == 2 and 'data-source="reproduced"' not in reported
    assert ">rank</button>" in reproduced and ">rank</button>" not in reported
    assert reported.count('class="badge reported"') == 2
    assert "Some paper README" in reported  # a reported row shows its citation
    # ranks by psnr (higher is better): identity (inf) first, the evil record (19.5) last
    assert column(reproduced, "rank") == ["1", "2", "3", "4", "5", "6"]
    assert column(reproduced, "model")[0] == "identity" and column(reproduced, "model")[-1] == EVIL_ESCAPED


def test_csv_and_json_exports_match_the_tables(site: Path):
    reproduced = json.loads(page(site, "recon.json"))
    assert [row["source"] for row in reproduced] == ["reproduced"] * 6
    assert (
        reproduced[0]["model"] == "identity" and reproduced[0]["psnr"] == "inf" and reproduced[0]["rank"] == 1
    )
    jpeg = next(row for row in reproduced if row["model"] == "jpeg:quality=50")
    assert jpeg["psnr"] == 30.0 and jpeg["psnr_ci95"] == 0.5 and jpeg["protocol_hash"] == NEW_HASH
    frame = pd.read_csv(site / "recon.csv")
    assert list(frame["model"]) == [row["model"] for row in reproduced]
    assert math.isinf(frame["psnr"][0]) and EVIL in set(frame["model"])  # data, not markup
    reported = json.loads(page(site, "recon@reported.json"))
    assert {row["source"] for row in reported} == {"reported"} and all("rank" not in row for row in reported)
    titok = next(row for row in reported if row["model"] == "TiTok-L-32")
    assert titok["rfid"] == 2.21 and titok["citation_url"] == "https://github.com/owner/repo"
    assert "Some paper README" in titok["citation"] and "t.csv" in titok["citation"]
    evil = next(row for row in reported if row["model"] == "Evil-Tok")
    assert evil["citation_url"] is None
    old = json.loads(page(site, f"recon@{OLD_HASH[:12]}.json"))
    assert [row["protocol_hash"] for row in old] == [OLD_HASH]
    assert 'href="recon.csv"' in page(site, "recon.html") and 'href="recon@reported.json"' in page(
        site, "recon.html"
    )


def test_record_page_shows_full_provenance(site: Path):
    record = store_records()[0]
    detail = page(site, f"records/{record['record_id']}.html")
    for text in (NEW_HASH, record["record_id"], "none (no weights file)", "kodak", "2026-01-02T00:00:00Z"):
        assert text in detail
    assert "Skipped items (0)" in detail and "Environment" in detail and "2.4" in detail
    reported = next(r for r in store_records() if r["model"]["name"] == "TiTok-L-32")
    cited = page(site, f"records/{reported['record_id']}.html")
    assert "Citation" in cited and "Cite as:" in cited and "Some paper README" in cited


def test_figures_are_embedded_as_json_for_plotly(site: Path):
    recon = page(site, "recon.html")
    figures = re.findall(r'class="plotly-figure"[^>]*>(.*?)</script>', recon, flags=re.DOTALL)
    assert figures
    titles = [json.loads(body)["layout"].get("title", {}).get("text") for body in figures]
    assert "PSNR (dB) vs bits per pixel" in titles
    assert '<script src="assets/plotly.min.js">' in recon
    names = {trace["name"] for body in figures for trace in json.loads(body)["data"]}
    assert {"jpeg", "webp"} <= names and EVIL not in names


def test_malformed_record_files_are_skipped_with_a_warning_naming_file_and_field(
    store: Path, tmp_path: Path, caplog
):
    good = build_site(store, tmp_path / "site")
    bad_records = {
        "missing": lambda r: r.pop("metrics"),
        "type": lambda r: r["dataset"].update(items_used="24"),
    }
    paths = {}
    for problem, mutate in bad_records.items():
        record = make_record("bad", f"bad:{problem}", {"psnr": 1.0})
        mutate(record)
        paths[problem] = store / "reproduced" / "recon" / f"{record['record_id']}.json"
        paths[problem].write_text(json.dumps(record), encoding="utf-8")
    nan_record = make_record("bad", "bad:nan", {"psnr": 1.0})
    paths["nan"] = store / "reproduced" / "recon" / f"{nan_record['record_id']}.json"
    paths["nan"].write_text(json.dumps(nan_record).replace('"psnr": 1.0', '"psnr": NaN'), encoding="utf-8")
    with caplog.at_level("WARNING"):
        rebuilt = build_site(store, good.out)
    assert rebuilt.records == good.records  # the bad files are skipped, the others built
    warnings = {problem: [m for m in caplog.messages if str(path) in m] for problem, path in paths.items()}
    assert all(len(found) == 1 for found in warnings.values()), caplog.messages
    assert "metrics" in warnings["missing"][0] and "dataset.items_used" in warnings["type"][0]
    assert "metrics.psnr" in warnings["nan"][0]


def test_rebuild_replaces_an_earlier_site_but_not_a_foreign_directory(store: Path, tmp_path: Path):
    out = build_site(store, tmp_path / "site").out
    (out / "stale.html").write_text("old", encoding="utf-8")  # a page the earlier build wrote
    manifest = json.loads((out / ".tokbench-site").read_text(encoding="utf-8"))
    manifest["files"].append("stale.html")
    (out / ".tokbench-site").write_text(json.dumps(manifest), encoding="utf-8")
    build_site(store, out)
    assert not (out / "stale.html").exists() and (out / "index.html").is_file()
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(ConfigError, match="not an earlier tokbench site"):
        build_site(store, foreign)
    assert (foreign / "notes.txt").read_text(encoding="utf-8") == "keep me"


def test_empty_store_builds_an_index(tmp_path: Path):
    summary = build_site(tmp_path / "missing-store", tmp_path / "site")
    assert summary.records == 0 and summary.pages == 2  # index and coverage
    index = page(summary.out, "index.html")
    assert "no records yet" in index and 'href="coverage.html"' in index
    rows = re.findall(r"<tr><td>(.*?)</td>.*?</tr>", index)
    assert rows == sorted(catalog.names("suites")) and index.count("<td>none yet</td>") == len(rows)


def test_the_index_lists_suites_without_records_and_links_those_with(store: Path, tmp_path: Path):
    index = page(build_site(store, tmp_path / "site").out, "index.html")
    assert '<td><a href="recon.html">recon</a></td>' in index
    for suite in set(catalog.names("suites")) - {"recon"}:
        assert re.search(rf"<tr><td>{re.escape(suite)}</td><td>[^<]*</td><td>none yet</td>", index), suite


def test_the_coverage_page_lists_every_coverage_row(store: Path, tmp_path: Path):
    from tokbench.report.coverage import load_coverage

    coverage = page(build_site(store, tmp_path / "site").out, "coverage.html")
    for row in load_coverage():
        assert f"<td>{html.escape(row.name, quote=True)}</td>" in coverage
    assert "<code>titok:variant=l32</code>" in coverage


def test_escape_script_json_and_safe_url():
    text = escape_script_json({"a": "</script><!-- & \u2028"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"a": "</script><!-- & \u2028"}
    assert safe_url("https://example.org/x?y=1") == "https://example.org/x?y=1"
    for bad in (
        "javascript:alert(1)",
        "JAVASCRIPT:alert(1)",
        "//evil",
        "data:text/html,x",
        None,
        3,
        'https://a" x',
    ):
        assert safe_url(bad) is None


def test_ranks_follow_the_metric_direction_and_share_ties():
    records = [
        make_record("a", "a", {"psnr": 30.0, "rfid": 2.0}),
        make_record("b", "b", {"psnr": 31.0, "rfid": 1.0}),
        make_record("c", "c", {"psnr": 30.0, "rfid": 3.0}),
        make_record("d", "d", {"ssim": 0.5}),
    ]
    by_psnr = rank_records(records, "psnr")
    assert [by_psnr.get(r["record_id"]) for r in records] == [2, 1, 2, None]
    by_rfid = rank_records(records, "rfid")
    assert [by_rfid.get(r["record_id"]) for r in records] == [2, 1, 3, None]
    assert primary_metric(records) == "psnr"
    assert primary_metric([make_record("x", "x", {"foo": 1.0}, suite="other")]) is None


def test_protocol_groups_put_the_highest_version_first():
    records = [
        make_record("a", "a", {"psnr": 1.0}, version="10", protocol_hash=NEW_HASH, day=1),
        make_record("a", "a", {"psnr": 1.0}, version="9", protocol_hash=OLD_HASH, day=5),
    ]
    assert [g[0]["suite"]["version"] for g in protocol_groups(records)] == ["10", "9"]


def test_rank_correlation_pairs_generators_with_their_tokenizers(tmp_path: Path):
    tokenizers = [make_record(f"tok{i}", f"tok{i}", {"rfid": float(i)}) for i in range(1, 5)]
    gens = [
        make_record(f"gen{i}", f"gen{i}:tokenizer=tok{i}", {"gfid": float(i * i)}, suite="gen")
        for i in range(1, 5)
    ]
    for i, gen in enumerate(gens, start=1):
        gen["model"]["arguments"] = {"tokenizer": f"tok{i}"}
    points = correlation_points(tokenizers, gens, "rfid")
    assert len(points) == 4 and {p.group for p in points} == {
        f"recon v2 · {NEW_HASH[:12]} × gen v2 · {NEW_HASH[:12]}"
    }
    assert spearman_rho([p.x for p in points], [p.y for p in points]) == pytest.approx(1.0)
    assert correlation_points(tokenizers, [reported_record("g", {"gfid": 1.0}, suite="gen")], "rfid") == []
    figure = rank_correlation_figure(points, "rfid", "gfid")
    assert "Spearman ρ = 1.00, n = 4" in figure.data[0].name
    root = tmp_path / "store"
    for record in tokenizers + gens:
        RecordStore(root).add(record)
    gen_page = page(build_site(root, tmp_path / "site").out, "gen.html")
    assert "Does reconstruction predict generation?" in gen_page and "rFID vs gFID (reproduced)" in gen_page


def test_rank_correlation_needs_three_points_and_is_escaped():
    assert spearman_rho([1.0, 2.0], [2.0, 1.0]) is None
    assert spearman_rho([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) is None
    assert spearman_rho([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    figure = rank_correlation_figure([CorrelationPoint(EVIL, 1.0, 2.0, EVIL)], "rfid", "gfid")
    assert EVIL not in figure.data[0].name and EVIL not in figure.data[0].hovertext[0]


def test_no_correlation_section_without_generator_data(site: Path):
    assert "Does reconstruction predict generation?" not in page(site, "recon.html")


def test_tokbench_bucket_bars_appear_when_buckets_exist(tmp_path: Path):
    root = tmp_path / "store"
    for name, base in (("Resize", 90.0), ("VQGAN", 5.0)):
        metrics = {
            f"{m}_{b}": base / (i + 1) for m in ("t_acc", "f_sim") for i, b in enumerate(("small", "large"))
        }
        metrics["t_acc_mean"] = base
        RecordStore(root).add(reported_record(name, metrics, suite="tokbench"))
    text = page(build_site(root, tmp_path / "site").out, "tokbench.html")
    assert "bucket bars" in text
    figures = [
        json.loads(b) for b in re.findall(r'class="plotly-figure"[^>]*>(.*?)</script>', text, re.DOTALL)
    ]
    bars = [t for f in figures for t in f["data"] if t["type"] == "bar"]
    assert {t["name"] for t in bars} == {"small", "medium", "large"}
    assert bars[0]["x"] == ["Resize", "VQGAN"]  # best t_acc_mean first


def foo_records(higher_is_better: bool | None, **suite) -> list[dict]:
    """Records of a suite no table knows, with an undeclared key described only by ``metric_info``."""
    info = {
        "foo_score": {"metric": "foo", "label": "Foo", "unit": "pt", "higher_is_better": higher_is_better}
    }
    records = [
        make_record(name, name, {"foo_score": value}, suite="other", metric_info=info)
        for name, value in (("low", 1.0), ("high", 3.0), ("mid", 2.0))
    ]
    for record in records:
        record["suite"].update(suite)
    return records


def test_a_new_metric_is_ranked_from_the_records_metric_info_alone(tmp_path: Path):
    records = foo_records(True, primary="foo_score")
    assert primary_metric(records) == "foo_score"
    ranks = rank_records(records, "foo_score")
    assert [ranks[r["record_id"]] for r in records] == [3, 1, 2]  # higher is better
    lower = foo_records(False, primary="foo_score")
    assert [rank_records(lower, "foo_score")[r["record_id"]] for r in lower] == [1, 3, 2]
    assert primary_metric(foo_records(None, primary="foo_score")) is None  # no direction: not ranked
    configured = foo_records(True, config={"metrics": [{"name": "foo", "key": "foo_score"}]})
    assert primary_metric(configured) == "foo_score"  # no primary: the suite's first metric entry
    root = tmp_path / "store"
    for record in records:
        RecordStore(root).add(record)
    board_other = tables(page(build_site(root, tmp_path / "site").out, "other.html"))["board-other"]
    assert column(board_other, "model") == ["high", "mid", "low"] and column(board_other, "rank") == [
        "1",
        "2",
        "3",
    ]
    assert 'title="Foo (pt) · higher is better"><button type="button">foo_score ↑</button>' in board_other


def test_the_suite_primary_comes_before_the_defaults():
    records = [
        make_record(name, name, {"psnr": psnr, "lpips": lpips})
        for name, psnr, lpips in (("a", 30.0, 0.2), ("b", 20.0, 0.1))
    ]
    assert primary_metric(records) == "psnr"  # recon's default
    for record in records:
        record["suite"]["primary"] = "lpips"
    assert primary_metric(records) == "lpips"
    assert [rank_records(records, "lpips")[r["record_id"]] for r in records] == [2, 1]


def test_malformed_metric_info_fails_naming_the_record_and_key():
    record = make_record("a", "a", {"foo_score": 1.0}, metric_info={"foo_score": {"label": "Foo"}})
    with pytest.raises(StoreError, match=r"metric_info\.foo_score must be an object with .*higher_is_better"):
        rank_records([record], "foo_score")


def test_suite_tables_lead_with_rank_model_metrics_and_bits(tmp_path: Path):
    judges = {"inception": {"name": "inception-v3-tf", "weights_sha256": "f" * 64, "resize": "tf1-bilinear"}}
    records = [
        make_record(
            "jpeg",
            f"jpeg:quality={q}",
            {"psnr": 20.0 + q, "ssim": 0.5, "bits_per_pixel": q / 10, "encode_seconds_per_image": 0.1},
            protocol={"dataset": {"name": "kodak"}, "judges": judges},
        )
        for q in (1, 2)
    ]
    root = tmp_path / "store"
    for record in records:
        RecordStore(root).add(record)
    recon = page(build_site(root, tmp_path / "site").out, "recon.html")
    table = recon[recon.index('id="board-recon"') :]
    headers = re.findall(r"<button type=\"button\">(.*?)</button>", table[: table.index("</thead>")])
    assert headers[:5] == ["rank", "model", "psnr ↑", "ssim ↑", "bits_per_pixel ↓"]
    assert headers.index("family") > headers.index("bits_per_pixel ↓")
    assert headers.index("encode s/image ↓") > headers.index("family")
    assert "judge" not in headers and "inception-v3-tf" not in table  # judges stay in the protocol card
    card = recon[recon.index('<div class="card">') : recon.index('id="board-recon"')]
    assert "inception-v3-tf" in card
