"""dgnode: multimodal emotion recognition in conversation (MERC) at cluster scale."""

__version__ = "0.1.0"
