"""The embedding stage: chunking, out-of-memory retries that lose nothing, and items with input errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dgnode.embedding.actor import EmbedActor, Embedder, OutOfMemoryError, simulated_oom_hook
from dgnode.embedding.model import build_imagebind
from dgnode.media.text import tokenize


@pytest.fixture(scope="module")
def loaded():
    return build_imagebind("tiny", modalities=["text", "audio"], seed=0)


def _batch(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "utt_id": np.array([f"u{i}" for i in range(n)]),
        "text": rng.integers(1, 49000, size=(n, 77)),
        "audio": rng.standard_normal((n, 3, 1, 128, 204)).astype(np.float32),
        "error_text": np.array([""] * n),
        "error_audio": np.array([""] * n),
        "frame_times": np.arange(n, dtype=np.float64),
    }


def test_oom_halves_the_batch_and_loses_nothing(loaded):
    batch = _batch(10)
    reference, _ = Embedder(loaded, {"text": 10, "audio": 10}).embed(batch)

    embedder = Embedder(loaded, {"text": 10, "audio": 8}, fault_hook=simulated_oom_hook(3))
    vectors, stats = embedder.embed(batch)
    for modality in ("text", "audio"):
        np.testing.assert_allclose(vectors[f"emb_{modality}"], reference[f"emb_{modality}"], atol=1e-5)
        assert vectors[f"error_{modality}"].tolist() == [""] * 10
    # text: 10 fails, 5 fails, 2 x 2 + ...; audio: 8 fails, 4 fails, then chunks of 2.
    assert stats.forwards == [
        ("text", 10), ("text", 5), ("text", 2), ("text", 2), ("text", 2), ("text", 2), ("text", 2),
        ("audio", 8), ("audio", 4), ("audio", 2), ("audio", 2), ("audio", 2), ("audio", 2), ("audio", 2),
    ]
    assert stats.oom_retries == 4
    assert embedder.chunk_sizes == {"text": 2, "audio": 2} == stats.chunk_sizes
    # The smaller size sticks: the next batch starts at 2 and needs no retry.
    _, again = embedder.embed(_batch(4, seed=1))
    assert again.oom_retries == 0 and again.forwards == [("text", 2)] * 2 + [("audio", 2)] * 2


def test_oom_with_the_next_chunk_already_uploaded_loses_nothing(loaded):
    # The CUDA path uploads chunk i + 1 while chunk i runs; here the same bookkeeping on the CPU.
    batch = _batch(11)
    reference, _ = Embedder(loaded, {"text": 11, "audio": 11}).embed(batch)
    calls = {"text": 0, "audio": 0}

    def hook(modality: str, items: int) -> None:
        calls[modality] += 1
        if (modality == "text" and calls["text"] == 3) or (modality == "audio" and items > 3):
            raise OutOfMemoryError(f"simulated: {modality} call {calls[modality]}, {items} items")

    embedder = Embedder(loaded, {"text": 2, "audio": 6}, fault_hook=hook, prefetch=True)
    uploads: list[tuple[str, tuple[int, ...]]] = []
    start = embedder.feeder.start

    def recording_start(inputs, rows):
        uploads.append(("text" if inputs.ndim == 2 else "audio", tuple(rows)))
        return start(inputs, rows)

    embedder.feeder.start = recording_start
    vectors, stats = embedder.embed(batch)
    for modality in ("text", "audio"):
        np.testing.assert_allclose(vectors[f"emb_{modality}"], reference[f"emb_{modality}"], atol=1e-5)
        assert vectors[f"error_{modality}"].tolist() == [""] * 11
    # text: the third chunk (4, 5) fails after it was uploaded ahead; from there on, single items.
    assert stats.forwards == [("text", 2)] * 3 + [("text", 1)] * 7 + [("audio", 6), ("audio", 3), ("audio", 3), ("audio", 3), ("audio", 2)]
    assert stats.oom_retries == 2 and embedder.chunk_sizes == {"text": 1, "audio": 3}
    assert uploads == [
        ("text", (0, 1)), ("text", (2, 3)), ("text", (4, 5)),  # (4, 5) went ahead, then was dropped
        *(("text", (i,)) for i in range(4, 11)),
        ("audio", (0, 1, 2)), ("audio", (3, 4, 5)), ("audio", (6, 7, 8)), ("audio", (9, 10)),
    ]
    assert not Embedder(loaded, {"text": 4, "audio": 4}).prefetch  # the CPU does not prefetch by default


def test_an_item_that_does_not_fit_alone_becomes_an_error_not_a_crash(loaded):
    vectors, stats = Embedder(loaded, {"text": 4, "audio": 4}, fault_hook=simulated_oom_hook(0)).embed(_batch(3))
    for modality in ("text", "audio"):
        assert all(e.startswith(f"OutOfMemoryError: one {modality} item does not fit") for e in vectors[f"error_{modality}"])
        assert not vectors[f"emb_{modality}"].any()


def test_items_with_input_errors_are_skipped_and_keep_their_error(loaded):
    batch = _batch(4)
    batch["error_audio"] = np.array(["", "ValueError: empty audio segment (0 samples)", "", ""])
    vectors, stats = Embedder(loaded, {"text": 4, "audio": 4}).embed(batch)
    assert vectors["error_audio"].tolist() == batch["error_audio"].tolist()
    assert not vectors["emb_audio"][1].any() and vectors["emb_audio"][[0, 2, 3]].any(axis=1).all()
    assert ("audio", 3) in stats.forwards
    assert stats.memory_kind == "rss" and stats.peak_memory_bytes > 0


def test_actor_tokenizes_text_drops_inputs_and_passes_the_rest_through(loaded):
    actor = EmbedActor("tiny", ["text", "audio"], {"text": 2, "audio": 2}, simulate_oom_above=1)
    batch = _batch(3)
    batch["text"] = np.array(["Excuse me.", "[LAUGHTER] Excuse me.", "Do you have your forms?"])
    out = actor(batch)
    assert set(out) == {
        "utt_id", "error_text", "error_audio", "frame_times", "emb_text", "emb_audio",
        "seconds_embed", "embed_batch", "peak_memory_bytes", "oom_retries",
    }
    assert len(set(out["embed_batch"])) == 1 and actor(_batch(1))["embed_batch"][0] != out["embed_batch"][0]
    assert out["emb_text"].shape == (3, 32) and out["emb_text"].dtype == np.float32
    assert out["frame_times"].tolist() == [0.0, 1.0, 2.0]
    assert out["oom_retries"].tolist() == [2, 2, 2]  # one halving per modality
    np.testing.assert_array_equal(out["emb_text"][0], out["emb_text"][1])  # the noise tag was dropped
    assert not np.allclose(out["emb_text"][0], out["emb_text"][2])
    tokens = tokenize(["Excuse me."])
    np.testing.assert_allclose(out["emb_text"][:1], loaded.forward("text", torch.from_numpy(tokens)).numpy(), atol=1e-6)
