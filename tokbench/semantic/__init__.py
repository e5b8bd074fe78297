"""Semantic fidelity: ImageNet class names and prompts, labelled data helpers, ViT token reduction."""
