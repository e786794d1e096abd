"""Media fixtures: a split-screen dialogue AVI (the synthetic corpus's format) and utterance wavs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from dgnode.corpus import synth_media

DIALOGUE_SECONDS = 10.0


@dataclass
class Dialogue:
    avi: Path
    stereo: np.ndarray  # (n, 2) int16 at 16 kHz, the AVI's audio track
    frames: int


def make_dialogue(path: Path, seconds: float, seed: int = 0) -> Dialogue:
    n = int(round(seconds * synth_media.SAMPLE_RATE))
    rng = np.random.default_rng(seed)
    stereo = rng.normal(0.0, synth_media.NOISE_STD, size=(n, 2))
    stereo[:, 0] += np.pad(synth_media.tone(n // 2, 440.0), (0, n - n // 2))
    stereo[:, 1] += np.pad(synth_media.tone(n - n // 2, 660.0), (n // 2, 0))
    stereo = np.clip(np.round(stereo), -32768, 32767).astype(np.int16)
    frames = synth_media.write_dialogue_avi(path, stereo)
    return Dialogue(path, stereo, frames)


@pytest.fixture(scope="session")
def dialogue(tmp_path_factory) -> Dialogue:
    return make_dialogue(tmp_path_factory.mktemp("media") / "Ses01F_impro01.avi", DIALOGUE_SECONDS)


@pytest.fixture(scope="session")
def dialogue_factory():
    """``make_dialogue(path, seconds, seed)`` for tests that need other lengths."""
    return make_dialogue
