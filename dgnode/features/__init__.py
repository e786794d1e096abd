"""The feature stage: Parquet feature stores, their conversations, imports and synthetic features.

* :class:`FeatureStore` (:mod:`dgnode.features.store`): one row per utterance, one fixed-length
  float32 column per modality (:data:`MODALITIES`), idempotent crash-safe appends by any number
  of writers, in a local folder or under an ``s3://`` prefix (parts: :mod:`dgnode.features.parts`);
* :func:`load_conversations` (:mod:`dgnode.features.dataset`): a store as normalised
  conversations for the graph models, batched by :func:`collate`;
* :func:`import_pickle` (:mod:`dgnode.features.pickles`): MMGCN/COSMIC pickles read with
  :func:`restricted_load`, which runs nothing in the file;
* :func:`synthesize_features` (:mod:`dgnode.features.synth`): features with planted fusion and
  context signal over a real conversation structure;
* :func:`describe_store` (:mod:`dgnode.features.summary`): what a store holds, counted;
* :func:`check_part` (:mod:`dgnode.features.validation`): a part checked against
  ``metadata.json`` from its Parquet footer; :class:`StoreLock` (:mod:`dgnode.features.lock`):
  the store's writer lock.

Names are imported lazily so that ``dgnode --help`` does not load torch or pyarrow.
"""

from __future__ import annotations

from dgnode.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "dgnode.features.store": ("FeatureStore", "StoredFeatures"),
    "dgnode.features.metadata": ("StoreMetadata", "MODALITIES", "KEY_COLUMNS"),
    "dgnode.features.validation": ("check_part", "row_schema"),
    "dgnode.features.lock": ("StoreLock",),
    "dgnode.features.dataset": ("Conversation", "ConversationBatch", "ConversationSet", "collate", "iterate_batches", "load_conversations"),
    "dgnode.features.pickles": ("ImportReport", "import_pickle"),
    "dgnode.features.restricted_pickle": ("restricted_load",),
    "dgnode.features.pickle_dialogues": ("carve_validation",),
    "dgnode.features.synth": ("FeatureSynthConfig", "read_structure", "synthesize_features"),
    "dgnode.features.summary": ("StoreSummary", "describe_store"),
})
