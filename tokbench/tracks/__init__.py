"""Tracks: how a suite runs. A suite names its track with ``track:`` (default ``recon``).

Each track is one module implementing ``tokbench.tracks.base.Track``; built-ins are listed here as
lazy ``"module:Class"`` strings, plugins register through the ``tokbench.tracks`` entry-point group.
"""

from __future__ import annotations

from tokbench.registry import Registry
from tokbench.tracks.base import Track

TRACKS: Registry[type[Track]] = Registry("track", base=Track, entry_point_group="tokbench.tracks")
for _key, _target in {
    "recon": "tokbench.tracks.recon:ReconTrack",
    "gen": "tokbench.tracks.gen:GenTrack",
    "tokbench": "tokbench.tracks.tokbench:TokbenchTrack",
    "prune": "tokbench.tracks.prune:PruneTrack",
    "vit-reduction": "tokbench.tracks.vit_reduction:VitReductionTrack",
    "tokbench-video": "tokbench.tracks.tokbench_video:TokbenchVideoTrack",
    "video-recon": "tokbench.tracks.video_recon:VideoReconTrack",
}.items():
    TRACKS.register(_key, _target)

__all__ = ["TRACKS", "Track"]
