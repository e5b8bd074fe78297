"""Published numbers as reported records (tokbench/reported.py), on small synthetic CSV tables."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tokbench.cli import main
from tokbench.comparability import SOURCE_FACTS, UNKNOWN, compares_with, fact_summary, protocol_mismatches
from tokbench.errors import ConfigError
from tokbench.metrics.info import key_info
from tokbench.records import validate_record
from tokbench.reported import TABLES, citation_line, ingest_published, read_published, readme_caveats
from tokbench.store import STORE_ENV_VAR, RecordStore

STAMP = "2026-02-01T00:00:00Z"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "reference" / "published"
TABLE_TEXT = {
    "tokenizers_imagenet256.csv": (
        "model,hub_id,tokens,codebook_size,rfid,gfid,generator,source\n"
        "Tok-A,org/tok-a,32,4096,2.5,3.0,gen-a (8 steps),acme/tok README.md\n"
        "Tok-B,org/tok-b,64,continuous c16,1.5,,,acme/tok README.md\n"
    ),
    "pfid_imagenet256.csv": (
        "tokenizer,codebook_size,rfid,pfid,gfid,generator,source\n"
        "Robust (X),4096,1.0,2.0,1.8,Gen-B,acme/folder README\n"
        "Robust (X),4096,1.0,2.0,1.6,Gen-L (with CFG),acme/folder README; paper\n"
        "Plain,8192,0.8,7.0,,,acme/folder README\n"
    ),
    "tokbench_image_256.csv": (
        "method,type,t_acc_small,t_acc_medium,t_acc_large,t_acc_mean,t_ned_small,t_ned_medium,t_ned_large,"
        "t_ned_mean,f_sim_small,f_sim_medium,f_sim_large,f_sim_mean,source\n"
        "Resize,baseline,80,90,95,88.33,90,95,99,94.67,0.8,0.9,0.95,0.88,"
        "Bench page (someone/Bench page.html)\n"
    ),
    "tokbench_image_512_1024_mean.csv": (
        "method,resolution,t_acc_mean,t_ned_mean,f_sim_mean,source\n"
        "Resize,512,96,98,0.98,Bench page\n"
        "Resize,1024,97,99,1.0,Bench page\n"
    ),
    "tokbench_video.csv": (
        "method,type,factor,resolution,t_acc_small,t_acc_medium,t_acc_large,t_acc_mean,t_ned_small,"
        "t_ned_medium,t_ned_large,t_ned_mean,f_sim_small,f_sim_medium,f_sim_large,f_sim_mean,source\n"
        "Resize,-,1x1x1,480,60,90,97,82.33,77,95,98,90,0.8,0.9,0.95,0.88,Bench video page\n"
    ),
    "vlm_pruning_llava15_7b.csv": (
        "tokens_kept,method,gqa,mmb,mme,pope,sqa,vqav2,textvqa,source\n"
        "576,vanilla,61.9,64.7,1862,85.9,69.5,78.5,58.2,compilation (who/what README)\n"
        "64,Cutter,50,50,1500,70,60,65,50,compilation (who/what README)\n"
    ),
}
README = """# Published numbers

Caveats:
- Bench: T-ACC in %; mean of buckets;
  thresholds changed between commits.
- The pruning table is a secondary compilation.
- pFID settings are not stated.
"""


#: Facts of the synthetic sources above, as SOURCE_FACTS holds them for the real ones.
RFID_FACTS = {
    "fid": "torch-fidelity InceptionV3",
    "resize": "tf1-bilinear",
    "dataset": "imagenet-1k-val",
    "images": 50000,
    "preprocess": "imagenet-center-crop",
    "quantization": "uint8-round-half-even",
    "save": "lossless",
}
TEST_FACTS = {
    ("tokenizers_imagenet256.csv", "acme/tok"): {"recon": RFID_FACTS, "gen": {"resize": "tf1-bilinear"}},
    ("pfid_imagenet256.csv", "acme/folder"): {
        "pfid": {**RFID_FACTS, "perturbation": UNKNOWN},
        "gen": {"dataset": "VIRTUAL_imagenet256_labeled.npz"},
    },
    ("tokbench_image_256.csv", "Bench page"): {"tokbench": {"bucket_edges": UNKNOWN}},
    ("tokbench_image_512_1024_mean.csv", "Bench page"): {"tokbench": {"bucket_edges": UNKNOWN}},
    ("vlm_pruning_llava15_7b.csv", "compilation (who/what README)"): {"prune": {"dataset": UNKNOWN}},
}


@pytest.fixture(autouse=True)
def test_sources(monkeypatch):
    """The synthetic tables' sources carry facts, as every real source does."""
    for key, facts in TEST_FACTS.items():
        monkeypatch.setitem(SOURCE_FACTS, key, facts)


@pytest.fixture
def published(tmp_path: Path) -> Path:
    directory = tmp_path / "published"
    directory.mkdir()
    for name, text in TABLE_TEXT.items():
        (directory / name).write_text(text, encoding="utf-8")
    (directory / "README.md").write_text(README.replace("Bench:", "TokBench:"), encoding="utf-8")
    return directory


def by_suite(records: list[dict]) -> dict[str, list[dict]]:
    suites: dict[str, list[dict]] = {}
    for record in records:
        suites.setdefault(record["suite"]["name"], []).append(record)
    return suites


def test_every_table_becomes_valid_reported_records(published: Path):
    records = read_published(published, created_at=STAMP)
    suites = by_suite(records)
    assert {name: len(rs) for name, rs in suites.items()} == {
        "recon": 2,
        "gen": 3,
        "pfid": 2,  # the two Robust (X) rows give one pfid record
        "tokbench": 3,
        "tokbench-video": 1,
        "prune": 2,
    }
    for record in records:
        validate_record(record)
        assert record["source"] == "reported" and record["created_at"] == STAMP
        assert record["protocol"]["kind"] == "reported" and record["suite"]["config"]["reported"] is True
        assert all(re.fullmatch(r"[a-z][a-z0-9_]*", key) for key in record["metrics"])
        assert record["citation"]["table"] in TABLE_TEXT and record["citation"]["title"]
    tok_a = next(r for r in suites["recon"] if r["model"]["name"] == "Tok-A")
    assert tok_a["metrics"] == {"rfid": 2.5, "num_tokens": 32}
    assert tok_a["model"]["arguments"] == {"tokens": 32, "codebook_size": 4096, "hub_id": "org/tok-a"}
    assert tok_a["dataset"]["name"] == "imagenet-1k-val" and "rFID" in tok_a["protocol"]["description"]
    assert tok_a["protocol"]["facts"] == RFID_FACTS and tok_a["protocol"]["source_name"] == "acme/tok"
    tok_b = next(r for r in suites["recon"] if r["model"]["name"] == "Tok-B")
    assert tok_b["model"]["arguments"]["codebook_size"] == "continuous c16"
    gen = next(r for r in suites["gen"] if r["model"]["arguments"]["tokenizer"] == "Tok-A")
    assert gen["model"]["spec"] == "gen-a (8 steps):tokenizer=Tok-A" and gen["metrics"] == {"gfid": 3.0}
    assert gen["model"]["kind"] == "generator"
    prune = next(r for r in suites["prune"] if r["model"]["name"] == "Cutter")
    assert prune["model"]["spec"] == "Cutter:tokens_kept=64" and prune["metrics"]["mme"] == 1500
    assert prune["metrics"]["tokens_kept"] == 64 and prune["model"]["kind"] == "pruner"
    resize = sorted(r["model"]["spec"] for r in suites["tokbench"])
    assert resize == ["Resize:resolution=1024", "Resize:resolution=256", "Resize:resolution=512"]


def test_reported_protocols_never_share_a_hash_with_reproduced_or_other_tables(published: Path):
    records = read_published(published, created_at=STAMP)
    reproduced_recon = {"e8ac442531c8875736976f2f667897e47cecc82da90e51c48bf73c551d0ddb41"}
    hashes = {r["protocol_hash"] for r in records}
    assert not hashes & reproduced_recon
    recon_hash = {r["protocol_hash"] for r in records if r["suite"]["name"] == "recon"}
    gen_tables = {
        r["protocol_hash"]: r["protocol"]["source_table"] for r in records if r["suite"]["name"] == "gen"
    }
    assert len(recon_hash) == 1 and len(gen_tables) == 2  # one gen protocol per source table
    tokbench = {
        r["protocol"]["resolution"]: r["protocol_hash"] for r in records if r["suite"]["name"] == "tokbench"
    }
    assert len(set(tokbench.values())) == 3  # resolution is part of the protocol


def test_citations_take_urls_from_the_source_or_its_fuller_spelling(published: Path):
    records = read_published(published, created_at=STAMP)
    urls = {(r["suite"]["name"], r["model"]["spec"]): r["citation"].get("url") for r in records}
    assert urls[("recon", "Tok-A")] == "https://github.com/acme/tok"
    assert urls[("tokbench", "Resize:resolution=512")] == "https://github.com/someone/Bench"
    assert urls[("prune", "vanilla:tokens_kept=576")] == "https://github.com/who/what"
    line = citation_line(next(r for r in records if r["model"]["spec"] == "Tok-A"))
    assert line == (
        "Tok-A (recon); source: acme/tok README.md; https://github.com/acme/tok; "
        "table tokenizers_imagenet256.csv, row 2"
    )


def test_readme_caveats_are_attached_to_their_tables(published: Path):
    assert readme_caveats(published) == [
        "TokBench: T-ACC in %; mean of buckets; thresholds changed between commits.",
        "The pruning table is a secondary compilation.",
        "pFID settings are not stated.",
    ]
    records = read_published(published, created_at=STAMP)
    notes = {r["suite"]["name"]: r["citation"].get("notes") for r in records}
    assert notes["tokbench"] == ["TokBench: T-ACC in %; mean of buckets; thresholds changed between commits."]
    assert notes["prune"] == ["The pruning table is a secondary compilation."]
    assert notes["pfid"] == ["pFID settings are not stated."] and notes["recon"] is None


def test_ingest_writes_into_the_store_once(published: Path, tmp_path: Path):
    store = tmp_path / "leaderboards"
    first = ingest_published(published, store, created_at=STAMP)
    assert {result.status for result in first} == {"added"} and len(first) == 13
    assert all(result.path.parts[-3] == "reported" for result in first)
    again = ingest_published(published, store, created_at="2026-03-01T00:00:00Z")
    assert {result.status for result in again} == {"exists"}
    records = RecordStore(store).records(source="reported")
    assert len(records) == 13 and not RecordStore(store).records(source="reproduced")


def test_reported_records_carry_the_declared_metric_info(published: Path):
    for record in read_published(published, created_at=STAMP):
        info = record["metric_info"]
        assert set(info) == set(record["metrics"]), record["model"]["spec"]  # every published key is declared
        for key, entry in info.items():
            declared = key_info(key)
            assert (entry["label"], entry["unit"], entry["higher_is_better"]) == (
                declared.label,
                declared.unit,
                declared.higher_is_better,
            )
    prune = next(r for r in read_published(published, created_at=STAMP) if r["suite"]["name"] == "prune")
    assert prune["metric_info"]["gqa"] == {
        "metric": "gqa",
        "label": "GQA",
        "unit": "%",
        "higher_is_better": True,
    }
    assert "metric" not in prune["metric_info"]["tokens_kept"]  # a track measurement, no metric declares it


def test_tokbench_ingest_stores_into_the_store_and_reports_errors(published: Path, tmp_path: Path, capsys):
    store = tmp_path / "s"
    assert main(["ingest", str(published), "--store", str(store), "--created-at", STAMP]) == 0
    assert f"13 reported records in {store / 'reported'}: 13 added" in capsys.readouterr().out
    assert main(["ingest", str(published), "--store", str(store)]) == 0
    assert "13 exists" in capsys.readouterr().out
    assert main(["ingest", str(tmp_path / "nowhere"), "--store", str(store)]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_tokbench_ingest_uses_the_default_store_of_tokbench_run(
    published: Path, tmp_path: Path, monkeypatch, capsys
):
    monkeypatch.setenv(STORE_ENV_VAR, str(tmp_path / "env-store"))
    assert main(["ingest", str(published), "--created-at", STAMP, "--force"]) == 0
    assert "13 added" in capsys.readouterr().out
    assert len(RecordStore(tmp_path / "env-store").records(source="reported")) == 13


@pytest.mark.parametrize(
    ("table", "edit", "message"),
    [
        (
            "tokenizers_imagenet256.csv",
            ("2.5", "n/a"),
            r"tokenizers_imagenet256.csv line 2: column 'rfid' is 'n/a'",
        ),
        ("tokenizers_imagenet256.csv", ("2.5", "nan"), r"line 2: column 'rfid' is 'nan', expected a finite"),
        (
            "pfid_imagenet256.csv",
            ("1.0,2.0,1.6", "1.0,2.5,1.6"),
            r"line 3 and pfid_imagenet256.csv line 2 give",
        ),
        ("vlm_pruning_llava15_7b.csv", (",source", ""), r"missing column\(s\) \['source'\]"),
        ("vlm_pruning_llava15_7b.csv", ("61.9,", "61.9,1,"), r"line 2: 10 columns expected"),
        (
            "tokbench_image_512_1024_mean.csv",
            ("Bench page\nResize,1024", "\nResize,1024"),
            r"'source' is empty",
        ),
    ],
)
def test_bad_tables_raise_naming_file_line_and_column(published: Path, table: str, edit, message: str):
    path = published / table
    text = path.read_text(encoding="utf-8")
    assert edit[0] in text
    path.write_text(text.replace(edit[0], edit[1], 1), encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        read_published(published, created_at=STAMP)


def test_unknown_or_missing_tables_raise(published: Path, tmp_path: Path):
    (published / "mystery.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"unknown published table\(s\) \['mystery.csv'\]"):
        read_published(published)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no CSV tables"):
        read_published(empty)


def test_reader_columns_cover_the_known_tables():
    for name, table in TABLES.items():
        header = TABLE_TEXT[name].splitlines()[0].split(",")
        assert list(table.columns) == header or set(table.columns) <= set(header)


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"the published reference tables are not at {SHARED}")
def test_the_real_published_tables_ingest(tmp_path: Path):
    records = read_published(SHARED, created_at=STAMP)
    suites = by_suite(records)
    assert set(suites) == {"recon", "gen", "pfid", "tokbench", "prune"}
    titok = next(r for r in suites["recon"] if r["model"]["name"] == "TiTok-L-32")
    assert (
        titok["metrics"]["rfid"] == 2.21
        and titok["citation"]["url"] == "https://github.com/bytedance/1d-tokenizer"
    )
    ingest_published(SHARED, tmp_path / "store", created_at=STAMP)
    files = list((tmp_path / "store" / "reported").rglob("*.json"))
    assert len(files) == len(records)
    assert all(json.loads(path.read_text())["source"] == "reported" for path in files)


# --- protocol facts and comparability ------------------------------------------------------------------

STORE = Path(__file__).resolve().parents[1] / "leaderboards"


def reproduced_protocol(suite: str = "recon", resize: str = "tf1-bilinear", **dataset) -> dict:
    """A reproduced record's suite and protocol as the recon track writes them (ImageNet val 50k)."""
    return {
        "suite": {"name": suite, "version": "3"},
        "protocol": {
            "dataset": {"name": "imagenet-1k-val", "items_requested": 50000, **dataset},
            "preprocess": {"name": "imagenet-center-crop", "resolution": 256},
            "quantization": "uint8-round-half-even",
            "judges": {"inception": {"name": "inception-v3-tf", "resize": resize}},
        },
    }


def test_a_source_not_in_the_facts_table_states_every_fact_as_unknown(published: Path):
    path = published / "tokenizers_imagenet256.csv"
    path.write_text(path.read_text(encoding="utf-8").replace("acme/tok README.md", "other/tok README"))
    records = read_published(published, created_at=STAMP)
    tok_a = next(r for r in records if r["model"]["spec"] == "Tok-A")
    assert tok_a["protocol"]["source_name"] == "other/tok README"
    known = {key for suites in SOURCE_FACTS.values() for key in suites.get("recon", {})}
    assert tok_a["protocol"]["facts"] == dict.fromkeys(sorted(known), UNKNOWN) and "resize" in known
    assert "resize not stated by the source" in protocol_mismatches(tok_a, reproduced_protocol())


def test_each_source_of_a_mixed_table_gets_its_own_facts_and_protocol(published: Path, monkeypatch):
    path = published / "pfid_imagenet256.csv"
    path.write_text(path.read_text(encoding="utf-8").replace(",,,acme/folder README", ",,,acme/other README"))
    monkeypatch.setitem(SOURCE_FACTS, ("pfid_imagenet256.csv", "acme/other"), {"pfid": {"images": 10}})
    pfid = {
        r["model"]["name"]: r["protocol"]
        for r in read_published(published, created_at=STAMP)
        if r["suite"]["name"] == "pfid"
    }
    assert pfid["Plain"]["facts"] == {"images": 10} and pfid["Plain"]["source_name"] == "acme/other"
    assert (
        pfid["Robust (X)"]["source_name"] == "acme/folder" and pfid["Robust (X)"]["facts"]["images"] == 50000
    )


def test_the_comparability_rule_matches_equal_facts_and_names_each_difference(published: Path):
    tok_a = next(r for r in read_published(published, created_at=STAMP) if r["model"]["spec"] == "Tok-A")
    assert protocol_mismatches(tok_a, reproduced_protocol()) == []  # recon has no save step: lossless
    assert protocol_mismatches(tok_a, reproduced_protocol("recon-clean")) == []
    assert protocol_mismatches(tok_a, reproduced_protocol(resize="clean")) == [
        "resize tf1-bilinear in the source, clean reproduced"
    ]
    assert protocol_mismatches(tok_a, reproduced_protocol(name="embedded", items_requested=24)) == [
        "dataset imagenet-1k-val in the source, embedded reproduced",
        "images 50000 in the source, 24 reproduced",
    ]
    no_judge = reproduced_protocol()
    del no_judge["protocol"]["judges"]
    assert protocol_mismatches(tok_a, no_judge) == [
        "resize tf1-bilinear in the source, not stated by the reproduced protocol"
    ]
    assert protocol_mismatches(tok_a, reproduced_protocol("pfid")) == ["suite pfid does not measure recon"]
    assert fact_summary(tok_a["protocol"]["facts"]) == "tf1-bilinear, imagenet-1k-val, 50000 images"


def test_unknown_facts_never_match_and_stated_mappings_match_on_their_own_keys():
    reported = {
        "suite": {"name": "tokbench"},
        "protocol": {
            "facts": {"judges": {"ocr": "doctr-parseq"}, "save": "as-original", "bucket_edges": UNKNOWN}
        },
    }
    reproduced = {
        "suite": {"name": "tokbench-official"},
        "protocol": {
            "judges": {"ocr": {"name": "doctr-parseq"}, "face": {"name": "insightface-glintr100"}},
            "save": {"mode": "as-original", "rule": "..."},
            "suite": {"settings": {"bucket_edges": UNKNOWN}},
        },
    }
    assert protocol_mismatches(reported, reproduced) == ["bucket_edges not stated by the source"]
    reproduced["protocol"]["suite"]["settings"]["bucket_edges"] = "855802d"
    reproduced["protocol"]["judges"]["ocr"]["name"] = "tesseract"
    assert protocol_mismatches(reported, reproduced) == [
        'judges {"ocr": "doctr-parseq"} in the source, {"face": "insightface-glintr100", "ocr": "tesseract"} '
        "reproduced",
        "bucket_edges not stated by the source",
    ]
    assert compares_with("recon", "recon-clean") and not compares_with("recon", "reconx")
    assert not compares_with("tokbench", "tokbench-video", "tokenizer", "video-tokenizer")
    assert compares_with("tokbench", "tokbench-official", "tokenizer", "tokenizer")
    assert protocol_mismatches(
        {"suite": {"name": "prune"}, "protocol": {}}, {"suite": {"name": "prune"}}
    ) == ["the source states no fact a reproduced protocol can be compared on"]


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"the published reference tables are not at {SHARED}")
def test_every_committed_reported_record_carries_its_sources_facts():
    committed = RecordStore(STORE).records(source="reported")
    fresh = [
        record
        for directory in (SHARED, STORE / "published-video")  # the video table is kept in the repository
        for record in read_published(directory, created_at=committed[0]["created_at"])
    ]
    assert sorted(r["record_id"] for r in committed) == sorted(r["record_id"] for r in fresh)  # regenerated
    for record in committed:
        protocol = record["protocol"]
        key = (protocol["source_table"], protocol["source_name"])
        assert protocol["facts"] == SOURCE_FACTS[key][record["suite"]["name"]], record["record_id"]
        assert record["citation"]["title"].startswith(protocol["source_name"])
    titok = next(r for r in committed if r["model"]["name"] == "TiTok-L-32" and r["suite"]["name"] == "recon")
    assert (
        titok["protocol"]["facts"]["resize"] == "tf1-bilinear"
        and titok["protocol"]["facts"]["images"] == UNKNOWN
    )
    for reproduced in RecordStore(STORE).records(suite="recon", source="reproduced"):
        assert "images not stated by the source" in protocol_mismatches(titok, reproduced)
