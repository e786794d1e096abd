"""dgnode: multimodal emotion recognition in conversation (MERC) at cluster scale.

The stages are packages (corpus, media, embedding, features, graph, models, training, tuning,
tracking, study, streaming, pipeline, cluster); each lists its public names in ``__all__``.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
