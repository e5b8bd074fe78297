"""Pretrained judge networks (Inception, LPIPS backbones, ...) and the resolution of their weights."""
