"""VLM visual-token pruning: selection rules, pruner adapters, the LLaVA host, benchmarks and cost."""
