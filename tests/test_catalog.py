"""The catalog: one place that lists every registry, the entry-point groups, and what ``list`` shows."""

from __future__ import annotations

import pytest

from tokbench import catalog, cli
from tokbench.suites import SUITE_ENTRY_POINT_GROUP


def test_the_cli_lists_every_kind_of_the_catalog() -> None:
    assert set(cli.LIST_KINDS) == set(catalog.KINDS)


def test_every_kind_extends_through_an_entry_point_group() -> None:
    groups = {kind: registry.entry_point_group for kind, registry in catalog.REGISTRIES.items()}
    assert {**groups, "suites": SUITE_ENTRY_POINT_GROUP} == {
        kind: f"tokbench.{kind}" for kind in catalog.KINDS
    }


@pytest.mark.parametrize("kind", catalog.KINDS)
def test_listing_names_the_built_ins(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["list", kind]) == 0
    listed = capsys.readouterr().out.split()
    assert listed and set(catalog.names(kind)) <= set(listed)


def test_every_suite_on_the_path_loads_with_its_track() -> None:
    entries = catalog.suite_entries()
    assert [e.error for e in entries if e.error] == []
    assert {e.name: e.track for e in entries}["pfid"] == "recon"


CARD_KINDS = {"discrete", "continuous", "codec", "generator", "pruner"}


def test_model_entries_list_every_model_with_its_cards() -> None:
    entries = catalog.model_entries()
    assert [e.name for e in entries] == catalog.names("models")
    assert [e.error for e in entries if e.error] == []
    cards = {card.spec: card for entry in entries for card in entry.cards}
    titok = cards["titok:variant=l32"]
    assert (titok.kind, titok.tokens, titok.codebook, titok.verification) == (
        "discrete",
        32,
        4096,
        "golden: reference/titok",
    )
    assert cards["sd-vae:variant=sdxl"].verification == "library: diffusers AutoencoderKL"
    assert cards["jpeg"].kind == "codec" and cards["dit:variant=xl-2-256"].kind == "generator"


def test_every_card_spec_builds_arguments_of_its_own_model() -> None:
    from tokbench.adapters.registry import MODELS
    from tokbench.adapters.spec import coerce_arguments, parse_model_spec

    for entry in catalog.model_entries():
        for card in entry.cards:
            parsed = parse_model_spec(card.spec)
            assert parsed.target == entry.name, f"{card.spec} is a card of {entry.name}"
            coerce_arguments(MODELS.get(entry.name), parsed.raw_args, card.spec)  # unknown keys raise
            assert card.kind in CARD_KINDS, card
            assert card.verification == "none" or card.verification.startswith(("golden: ", "library: "))


def test_a_model_that_fails_to_import_is_listed_with_its_error(capsys: pytest.CaptureFixture[str]) -> None:
    from tokbench.adapters.registry import MODELS

    MODELS.register("broken-test-model", "tokbench.models.no_such_module:Nothing")
    try:
        (broken,) = [e for e in catalog.model_entries() if e.name == "broken-test-model"]
        assert "no_such_module" in broken.error and broken.cards == ()
        assert cli.main(["list", "models", "--details"]) == 0
        out = capsys.readouterr().out
    finally:
        MODELS.unregister("broken-test-model")
    (line,) = [line for line in out.splitlines() if line.startswith("broken-test-model")]
    assert "cannot import: ModuleNotFoundError" in line
    header = out.splitlines()[0].split()
    assert header[:7] == ["spec", "family", "kind", "tokens", "codebook", "down", "res"]
    assert "titok:variant=bl64_vq8k" in out and "yucornetto/tokenizer_titok_bl64_vq8k_imagenet" in out
    assert cli.main(["list", "metrics", "--details"]) == 1
