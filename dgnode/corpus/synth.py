"""A synthetic IEMOCAP release in the exact raw format, deterministic for a seed.

::

    summary = synthesize_corpus("/tmp/mini", SynthConfig(seed=0))          # 6 dialogues, with AVIs
    summary = synthesize_corpus("/tmp/full", SynthConfig(structure="dgnode/data/iemocap_structure.json",
                                                        video=False))    # the real 151-dialogue structure
    summary.expected_manifest("merc6")   # the rows `scan_corpus(out_dir)` must return

The tree is ``OUT/IEMOCAP_full_release/Session{n}/...`` (one level deep, as in circulating
copies) plus an ``OUT/__MACOSX/`` folder. Each dialogue has:

* ``dialog/EmoEvaluation/<dialog>.txt``: header, blank lines, blocks F-first (not
  chronological), per-rater ``C-``/``A-`` lines, at least one ``xxx`` block, one empty ``dom``;
  the subfolders ``Categorical/``, ``Attribute/``, ``Self-evaluation/`` with per-rater files;
* ``dialog/transcriptions/<dialog>.txt``: ``%08.4f`` times, overlapping speech, out-of-order
  lines, ``XX`` segment lines, comment lines, noise tags such as ``[LAUGHTER]`` in the text;
* ``sentences/wav/<dialog>/<utt>.wav`` (16 kHz mono int16, exactly ``round((end - start) * 16000)``
  samples) and ``sentences/ForcedAlignment/<dialog>/<utt>.wdseg`` (Sphinx layout with a ``WORD(2)``
  variant, ``<sil>``, a ``++LAUGHTER++``-style filler), one utterance without ``.wdseg``;
* ``dialog/lab/Ses0<n>_F|M/<dialog>.lab``;
* with ``video=True``: ``dialog/wav/<dialog>.wav`` (16 kHz stereo) and
  ``dialog/avi/DivX/<dialog>.avi`` (see :mod:`dgnode.corpus.synth_media`). ``video=False`` omits
  this dialogue-level media; utterance wavs are always written, since the scan requires them.

Emotion cues (``SynthConfig.cues``, default on): each utterance's segment carries weak, noisy signs
of its label in the video, the audio and the transcript, and mini-corpus dialogues have moods;
the cue table is in :mod:`dgnode.corpus.synth_cues`. The format and every trap are the same with
or without cues.

Stages, one module each: :mod:`~dgnode.corpus.synth_plan` decides every dialogue (mini corpus of
trap dialogues, or the structure file's dialogues with the real counts) and its cues
(:mod:`~dgnode.corpus.synth_cues`) from the :class:`SynthConfig`;
:mod:`~dgnode.corpus.synth_formats` writes their files (media drawn by
:mod:`~dgnode.corpus.synth_media`);
:mod:`~dgnode.corpus.synth_traps` adds the macOS junk and odd encodings and counts the rejects a
scan must report (:attr:`SynthSummary.expected_rejects`). Utterances of a structure corpus are
short (0.12-0.36 s by default) to keep the ~10k wavs small.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from dgnode.corpus.labels import get_scheme
from dgnode.corpus.manifest import manifest_frame
from dgnode.corpus.splits import standard_split
from dgnode.corpus.synth_dialogue import SynthDialogue, SynthUtterance
from dgnode.corpus.synth_formats import TreeWriter, write_dialogue
from dgnode.corpus.synth_plan import SynthConfig, plan_corpus
from dgnode.corpus.synth_traps import expected_rejects, write_junk

__all__ = ["RELEASE_DIR", "SynthConfig", "SynthSummary", "synthesize_corpus"]

RELEASE_DIR = "IEMOCAP_full_release"


@dataclass
class SynthSummary:
    """What was written; :meth:`expected_manifest` is what a scan of ``out_dir`` must return."""

    out_dir: Path
    release_dir: Path
    dialogues: list[SynthDialogue]
    video: bool
    files_written: int
    bytes_written: int
    seconds: float
    junk_paths: list[Path]
    expected_rejects: dict[str, int]

    def utterances(self) -> Iterator[tuple[SynthDialogue, SynthUtterance]]:
        for dialogue in self.dialogues:
            for utterance in dialogue.utterances:
                yield dialogue, utterance

    def session_dir(self, session: int) -> Path:
        return self.release_dir.resolve() / f"Session{session}"

    def video_path(self, dialogue: SynthDialogue) -> Path | None:
        if not self.video:
            return None
        return self.session_dir(dialogue.session) / "dialog" / "avi" / "DivX" / f"{dialogue.dialog_id}.avi"

    def dialogue_wav_path(self, dialogue: SynthDialogue) -> Path | None:
        if not self.video:
            return None
        return self.session_dir(dialogue.session) / "dialog" / "wav" / f"{dialogue.dialog_id}.wav"

    def wav_path(self, dialogue: SynthDialogue, utterance: SynthUtterance) -> Path:
        return self.session_dir(dialogue.session) / "sentences" / "wav" / dialogue.dialog_id / f"{utterance.utt_id}.wav"

    def wdseg_path(self, dialogue: SynthDialogue, utterance: SynthUtterance) -> Path:
        return (self.session_dir(dialogue.session) / "sentences" / "ForcedAlignment" / dialogue.dialog_id
                / f"{utterance.utt_id}.wdseg")

    def code_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(u.code for _, u in self.utterances()).items()))

    def expected_manifest(self, labels: str = "merc6") -> pd.DataFrame:
        """The manifest rows, in scan order (session, dialogue id, start time)."""
        scheme = get_scheme(labels)
        rows: list[dict[str, Any]] = []
        for dialogue in sorted(self.dialogues, key=lambda d: (d.session, d.dialog_id)):
            video = self.video_path(dialogue)
            for order, u in enumerate(dialogue.utterances):
                rows.append({
                    "dialog_id": dialogue.dialog_id,
                    "utt_id": u.utt_id,
                    "session": dialogue.session,
                    "speaker": f"Ses{dialogue.session:02d}.{u.speaker_letter}",
                    "speaker_side": "left" if u.speaker_letter == dialogue.mocap_letter else "right",
                    "start_s": u.start_s,
                    "end_s": u.end_s,
                    "order": order,
                    "label_code": u.code,
                    "label": scheme.label_of(u.code, u.majority),
                    "majority_category": u.majority,
                    "text": u.text,
                    "wav_path": str(self.wav_path(dialogue, u)),
                    "video_path": str(video) if video else None,
                    "wdseg_path": str(self.wdseg_path(dialogue, u)) if u.has_wdseg else None,
                    "words": u.words if u.has_wdseg else [],
                    "split": standard_split(dialogue.dialog_id, dialogue.session),
                })
        return manifest_frame(rows)

    def label_counts(self, labels: str = "merc6") -> dict[str, int]:
        scheme = get_scheme(labels)
        counts = Counter(scheme.label_of(u.code, u.majority) for _, u in self.utterances())
        return {name: counts.get(index, 0) for index, name in enumerate(scheme.label_names)}


def synthesize_corpus(out_dir: str | Path, config: SynthConfig | None = None, progress: bool | None = False):
    """Write a synthetic raw IEMOCAP release under ``out_dir``; see the module docstring.
    ``progress``: a bar per dialogue (``None``: the same, as the CLI asks). A config with
    ``dataset="meld"`` writes a MELD release instead and returns its
    :class:`~dgnode.corpus.meld_synth.MeldSynthSummary` (:func:`~dgnode.corpus.meld_synth.synthesize_meld`)."""
    from dgnode.reporting.progress import progress_bar

    config = config or SynthConfig()
    if config.dataset == "meld":
        from dgnode.corpus.meld_synth import synthesize_meld

        return synthesize_meld(out_dir, config, progress)
    began = time.perf_counter()
    dialogues = plan_corpus(config)
    out = Path(out_dir)
    release = out / RELEASE_DIR
    writer = TreeWriter()
    bar = progress_bar(total=len(dialogues), desc="synth corpus", unit="dialogue", enabled=progress is not False)
    for dialogue in dialogues:
        write_dialogue(writer, release, dialogue, config.seed, config.video)
        bar.update(1)
    bar.close()
    junk = write_junk(writer, out, release, dialogues, config.video) if config.junk else []
    return SynthSummary(
        out_dir=out,
        release_dir=release,
        dialogues=dialogues,
        video=config.video,
        files_written=writer.files,
        bytes_written=writer.bytes,
        seconds=time.perf_counter() - began,
        junk_paths=junk,
        expected_rejects=expected_rejects(dialogues, junk, config.junk),
    )
