"""What a checkpoint records about its inputs, and the checks that use it when a run is reloaded.

A checkpoint (``best.pt``, ``state.pt``: :meth:`dgnode.training.trainer.Trainer.state_dict`)
carries, besides the weights: the resolved config, the modalities and their input dims, the label
names, the number of speaker indices and the rule that assigns them
(:data:`dgnode.features.dataset.SPEAKER_ORDER`), the normalisation *with its fitted statistics*,
the feature store's path and fingerprint, and the library versions and code commit.

:func:`reload_data` reads a store for a saved model: the features are normalised with the
checkpoint's statistics (never refitted on the store's current train split, so adding, removing
or reordering parts of the store does not shift a single prediction), dims and labels must match
(a clear error otherwise), and a changed fingerprint is reported as a warning (evaluating a saved
model on new data is legitimate, but it should be visible).
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any, Mapping

from dgnode.errors import InputError

__all__ = ["StoreChangedWarning", "describe_inputs", "reload_data"]


class StoreChangedWarning(UserWarning):
    """The feature store's fingerprint differs from the one the checkpoint was trained on."""


def describe_inputs(config: Any, data: Any, modalities: list[str]) -> dict[str, Any]:
    """The input description every checkpoint of this run carries (computed once per trainer)."""
    from dgnode.features.dataset import SPEAKER_ORDER
    from dgnode.tracking.runs import git_commit, library_versions

    store = config.data.store
    return {
        "modalities": list(modalities),
        "normalisation": dict(data.normalisation),
        "speaker_order": SPEAKER_ORDER,
        "store": {"path": str(store) if store else None, "fingerprint": _fingerprint(store)},
        "versions": {**library_versions(), "dgnode_commit": git_commit()},
    }


def reload_data(store: str | Path, state: Mapping[str, Any], config: Any) -> Any:
    """The :class:`~dgnode.features.dataset.ConversationSet` of ``store`` as the checkpoint
    ``state``'s model expects it (see the module docstring). Checkpoints written before inputs
    were recorded fall back to refitting the normalisation on the store's train split."""
    from dgnode.features.dataset import SPEAKER_ORDER, apply_normalisation, load_conversations

    normalisation = state.get("normalisation")
    modalities = state.get("modalities") or config.data.modalities
    if normalisation is None:
        warnings.warn("the checkpoint carries no normalisation statistics (written by an older dgnode): "
                      "refitting them on the store's train split", StoreChangedWarning, stacklevel=2)
        return load_conversations(store, modalities, config.data.normalise)
    data = apply_normalisation(load_conversations(store, modalities, "none", require_train=False), normalisation)
    where = str(store)
    if "dims" in state and dict(state["dims"]) != {m: data.dims[m] for m in state["dims"] if m in data.dims}:
        raise InputError(f"the model was trained on inputs {dict(state['dims'])}; this store has {data.dims}", path=where)
    if "label_names" in state and list(state["label_names"]) != list(data.label_names):
        raise InputError(f"the model's labels {state['label_names']} differ from this store's {data.label_names}",
                         path=where)
    if state.get("speaker_order", SPEAKER_ORDER) != SPEAKER_ORDER:
        raise InputError(f"the model indexes speakers by {state['speaker_order']!r}, this dgnode by {SPEAKER_ORDER!r}",
                         path=where)
    known = int(state.get("num_speakers", data.num_speakers))
    if data.num_speakers > known:
        raise InputError(f"a dialogue of this store has {data.num_speakers} speakers; the model knows {known}", path=where)
    trained_on = (state.get("store") or {}).get("fingerprint")
    current = _fingerprint(store)
    if trained_on and current != trained_on:
        warnings.warn(f"{where}: the store's fingerprint {current} differs from the one the model was trained on "
                      f"({trained_on}); predicting with the checkpoint's normalisation statistics",
                      StoreChangedWarning, stacklevel=2)
    return dataclasses.replace(data, num_speakers=known)


def _fingerprint(store: str | Path | None) -> str | None:
    if not store:
        return None
    from dgnode.features.store import FeatureStore

    try:
        return FeatureStore.open(store).fingerprint()
    except Exception:  # noqa: BLE001 - a store that cannot be read has no fingerprint to record
        return None
