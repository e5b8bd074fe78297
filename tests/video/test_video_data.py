"""Video datasets: the clip sampler, videofolder decoding and its per-clip refusals, video-embedded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from clip_files import colour, flat_frames, write_audio_only, write_empty, write_video

from tokbench.data import video_embedded
from tokbench.data.registry import resolve_dataset
from tokbench.data.video import ClipSampler, VideoFolderDataset
from tokbench.errors import ConfigError, DataError


def _levels(frames: list) -> list[int]:
    """The grey level of each decoded flat frame."""
    return [int(np.asarray(frame)[0, 0, 0]) for frame in frames]


def test_embedded_set_is_deterministic() -> None:
    first = resolve_dataset("video-embedded")
    hash_one = first.manifest_hash()
    video_embedded._photo.cache_clear()  # the second build reads and renders everything again
    second = resolve_dataset("video-embedded")
    assert second.manifest_hash() == hash_one
    clips = second.clips(ClipSampler(frames=17))
    assert [c.id for c in clips] == [f"{scene.id}@0" for scene in video_embedded.SCENES]
    for clip in clips:
        frames = clip.load()
        assert len(frames) == 17 and {f.size for f in frames} == {(128, 128)}
        assert frames[0].tobytes() != frames[-1].tobytes(), f"{clip.id} does not move"
    entry = first.manifest()["items"][0]
    assert len(entry["frames_sha256"]) == 17 and len(set(entry["frames_sha256"])) == 17


def test_embedded_sampler_indexes_and_refuses_past_the_end() -> None:
    dataset = resolve_dataset("video-embedded")
    scene = video_embedded.SCENES[0]
    every = video_embedded.render(scene)
    clip = dataset.clips(ClipSampler(frames=4, start=2, stride=3))[0]
    assert clip.id == f"{scene.id}@2"
    assert [f.tobytes() for f in clip.load()] == [every[i].tobytes() for i in (2, 5, 8, 11)]
    too_long = dataset.clips(ClipSampler(frames=9, start=10))[0]
    with pytest.raises(DataError, match=f"{scene.id}@10.*17 frames"):
        too_long.load()


def test_videofolder_clips_are_lazy_with_stable_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_video(tmp_path / "b.mkv", flat_frames(20))
    (tmp_path / "sub").mkdir()
    write_video(tmp_path / "sub" / "a.mkv", flat_frames(20))
    (tmp_path / "notes.txt").write_text("not a video")
    opened: list[str] = []
    import av

    real_open = av.open
    monkeypatch.setattr(av, "open", lambda path, *a, **k: opened.append(path) or real_open(path, *a, **k))
    dataset = resolve_dataset(f"videofolder:{tmp_path}")
    sampler = ClipSampler(frames=4, stride=2, clips_per_video=2)
    clips = dataset.clips(sampler)
    assert [c.id for c in clips] == ["b.mkv@0", "b.mkv@7", "sub/a.mkv@0", "sub/a.mkv@7"]
    assert opened == []  # listing clips decodes nothing
    assert _levels(clips[1].load()) == [colour(k) for k in (7, 9, 11, 13)]
    assert len(opened) == 1
    assert [e["id"] for e in dataset.manifest()["items"]] == ["b.mkv", "sub/a.mkv"]


def test_sampler_is_validated_and_described() -> None:
    with pytest.raises(ConfigError, match="stride must be an integer >= 1"):
        ClipSampler(stride=0)
    with pytest.raises(ConfigError, match="fps must be a number > 0"):
        ClipSampler(fps=0)
    with pytest.raises(ConfigError, match=r"unknown settings.clips key\(s\) \['length'\]"):
        ClipSampler.from_settings({"length": 3}, "suite 'x'")
    assert ClipSampler(frames=3, stride=2).describe() != ClipSampler(frames=3).describe()


def test_bad_videos_are_refused_per_clip_with_a_reason(tmp_path: Path) -> None:
    ok = write_video(tmp_path / "ok.mp4", flat_frames(12), codec="libx264")
    data = ok.read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) // 2])
    write_audio_only(tmp_path / "audio.mp4")
    write_empty(tmp_path / "empty.mp4")
    (tmp_path / "garbage.webm").write_bytes(b"\x1a\x45\xdf\xa3 not really a video")
    write_video(tmp_path / "short.mkv", flat_frames(5))
    write_video(
        tmp_path / "vfr.mkv",
        flat_frames(12),
        times_ms=[0, 125, 250, 300, 500, 625, 700, 875, 1000, 1125, 1250, 1375],
    )
    write_video(tmp_path / "odd.mkv", flat_frames(12, height=17, width=33))
    dataset = VideoFolderDataset(tmp_path)
    outcomes = {}
    for clip in dataset.clips(ClipSampler(frames=9)):
        try:
            outcomes[clip.id] = clip.load()
        except DataError as error:
            outcomes[clip.id] = str(error)
    assert sorted(k for k, v in outcomes.items() if isinstance(v, list)) == ["odd.mkv@0", "ok.mp4@0"]
    assert "has no video stream (streams: audio)" in outcomes["audio.mp4@0"]
    assert "no video stream" in outcomes["empty.mp4@0"] or "no frames" in outcomes["empty.mp4@0"]
    assert "cannot open the video" in outcomes["truncated.mp4@0"]
    assert "cannot open the video" in outcomes["garbage.webm@0"]
    assert "has 5 frames; the clip needs frames 0…8" in outcomes["short.mkv@0"]
    assert "variable frame rate (frame intervals from 50.0 to 200.0 ms)" in outcomes["vfr.mkv@0"]
    assert all(v.startswith(k) for k, v in outcomes.items() if isinstance(v, str))  # each names its clip
    assert {f.size for f in outcomes["odd.mkv@0"]} == {(33, 17)}  # odd sizes decode as they are


def test_variable_frame_rate_is_resampled_by_presentation_time(tmp_path: Path) -> None:
    times = [0, 125, 250, 300, 500, 625, 700, 875, 1000, 1125, 1250, 1375]
    write_video(tmp_path / "vfr.mkv", flat_frames(12), times_ms=times)
    clip = VideoFolderDataset(tmp_path).clips(ClipSampler(frames=9, fps=8))[0]
    # the frame on screen at k/8 s: the last one presented at or before it (0.3 s covers 0.375 s)
    assert _levels(clip.load()) == [colour(k) for k in (0, 1, 2, 3, 4, 5, 6, 7, 8)]
    half = VideoFolderDataset(tmp_path).clips(ClipSampler(frames=5, fps=4))[0]
    assert _levels(half.load()) == [colour(k) for k in (0, 2, 4, 6, 8)]
    beyond = VideoFolderDataset(tmp_path).clips(ClipSampler(frames=9, fps=4))[0]
    with pytest.raises(DataError, match=r"lasts 1\.500 s \(12 frames\); the clip needs 2\.000 s at 4 fps"):
        beyond.load()


def test_image_tracks_refuse_a_video_dataset(tmp_path: Path) -> None:
    write_video(tmp_path / "a.mkv", flat_frames(3))
    with pytest.raises(ConfigError, match="holds videos: use it with a video suite"):
        resolve_dataset(f"videofolder:{tmp_path}").items()
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "x.png").write_bytes(b"")
    with pytest.raises(ConfigError, match="contains no videos"):
        VideoFolderDataset(tmp_path / "images")
