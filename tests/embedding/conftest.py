"""A small synthetic IEMOCAP corpus (the corpus stage's generator and scanner) with broken media.

Three dialogues of the mini corpus, their first 5 utterances each:

* ``Ses01F_impro01``: untouched.
* ``Ses01M_impro01``: one utterance wav deleted -> its audio comes from the dialogue AVI.
* ``Ses05M_script01_1``: AVI cut to its first 1% (one decodable frame) and one wav deleted ->
  every utterance fails vision, the one without a wav also fails audio.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

GOOD, FALLBACK, BROKEN = "Ses01F_impro01", "Ses01M_impro01", "Ses05M_script01_1"
UTTERANCES_PER_DIALOGUE = 5


@dataclass
class MiniCorpus:
    manifest_path: Path
    manifest: pd.DataFrame
    label_names: list[str]
    fallback_utt: str  # wav deleted, AVI fine
    broken_utt: str  # wav deleted, AVI truncated


@pytest.fixture(scope="session")
def mini_corpus(tmp_path_factory) -> MiniCorpus:
    from dgnode.corpus.manifest import write_manifest
    from dgnode.corpus.scan import scan_corpus
    from dgnode.corpus.synth import SynthConfig, synthesize_corpus

    root = tmp_path_factory.mktemp("corpus")
    synthesize_corpus(root / "raw", SynthConfig(seed=0, dialogs=5, utterances_per_dialogue=(8, 8), utterance_seconds=(0.8, 2.5)))
    scan = scan_corpus(root / "raw")
    # Five utterances of each of the three dialogues keep the Ray runs short.
    manifest = scan.manifest[scan.manifest["dialog_id"].isin([GOOD, FALLBACK, BROKEN])]
    manifest = manifest.groupby("dialog_id", sort=False).head(UTTERANCES_PER_DIALOGUE).reset_index(drop=True)

    fallback_utt = manifest[manifest["dialog_id"] == FALLBACK]["utt_id"].iloc[3]
    broken_utt = manifest[manifest["dialog_id"] == BROKEN]["utt_id"].iloc[2]
    for utt in (fallback_utt, broken_utt):
        Path(manifest.loc[manifest["utt_id"] == utt, "wav_path"].iloc[0]).unlink()
    avi = Path(manifest.loc[manifest["dialog_id"] == BROKEN, "video_path"].iloc[0])
    avi.write_bytes(avi.read_bytes()[: avi.stat().st_size // 100])

    path = root / "scan" / "manifest.parquet"
    path.parent.mkdir()
    label_names = list(scan.label_names)
    write_manifest(manifest, path, {"label_names": label_names, "label_scheme": scan.label_scheme})
    return MiniCorpus(path, manifest, label_names, fallback_utt, broken_utt)
