"""Vocabularies shared by datasets, judges and metrics: ImageNet class names and CLIP prompt sets."""
