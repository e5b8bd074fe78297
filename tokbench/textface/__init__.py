"""TokBench text and face fidelity: annotated datasets, crops, the track and per-instance details."""
