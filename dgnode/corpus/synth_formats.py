"""The files of one synthetic dialogue in the raw IEMOCAP formats.

:func:`write_dialogue` writes, under ``RELEASE/Session{n}``: the EmoEvaluation file (header,
blocks F-first, per-rater ``C-``/``A-`` lines, one empty ``dom``) and its ``Categorical/``,
``Attribute/``, ``Self-evaluation/`` files; the transcription (``%08.4f`` times, ``XX`` and
comment lines, out-of-order pairs, CRLF or cp1252 where the dialogue asks); the ``.lab`` files;
the utterance wavs and Sphinx ``.wdseg`` word alignments; with ``video`` the stereo dialogue wav
and the AVI. An utterance's emotion cue (:attr:`SynthUtterance.cue`) shapes its tone and puts a
face disc in its speaker's half of the video. Writing a ``.wdseg`` fills :attr:`SynthUtterance.words` with the alignment a reader
must return, and the EmoEvaluation file sets :attr:`SynthDialogue.empty_dom_utt`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dgnode.corpus.synth_cues import VOICE_HARMONICS
from dgnode.corpus.synth_dialogue import SynthDialogue, SynthUtterance, dialogue_rng
from dgnode.corpus.synth_media import NOISE_STD, SAMPLE_RATE, FaceDisc, tone, write_dialogue_avi, write_wav
from dgnode.options import ConfigError

__all__ = ["TreeWriter", "write_dialogue"]

_EMO_HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]"
_TRANSCRIPT_COMMENT = "(the actors pause and the take resumes)"
_SILENCE_FILL = "<sil>"


class TreeWriter:
    """Writes files, creating folders, and counts what it wrote."""

    def __init__(self) -> None:
        self.files = 0
        self.bytes = 0
        self._made: set[Path] = set()

    def folder(self, path: Path) -> Path:
        if path not in self._made:
            path.mkdir(parents=True, exist_ok=True)
            self._made.add(path)
        return path

    def text(self, path: Path, lines: list[str], encoding: str = "utf-8", crlf: bool = False) -> None:
        newline = "\r\n" if crlf else "\n"
        self.bytes_(path, (newline.join(lines) + newline).encode(encoding))

    def bytes_(self, path: Path, data: bytes) -> None:
        self.folder(path.parent)
        path.write_bytes(data)
        self.files += 1
        self.bytes += len(data)

    def wav(self, path: Path, samples: np.ndarray) -> None:
        self.folder(path.parent)
        self.bytes += write_wav(path, samples)
        self.files += 1


def write_dialogue(writer: TreeWriter, release: Path, dialogue: SynthDialogue, seed: int, video: bool) -> None:
    """Every file of ``dialogue`` under ``release`` (see the module docstring)."""
    rng = dialogue_rng(seed, dialogue.dialog_id + "/write")
    session_dir = release / f"Session{dialogue.session}"
    dialog_dir = session_dir / "dialog"
    d = dialogue.dialog_id
    writer.text(dialog_dir / "EmoEvaluation" / f"{d}.txt", _emo_lines(rng, dialogue), crlf="emo" in dialogue.crlf_files)
    _write_emo_subfolders(writer, dialog_dir / "EmoEvaluation", dialogue)
    writer.text(dialog_dir / "transcriptions" / f"{d}.txt", _transcription_lines(rng, dialogue),
                encoding=dialogue.transcription_encoding, crlf="transcription" in dialogue.crlf_files)
    for letter in ("F", "M"):
        own = [u for u in dialogue.utterances if u.speaker_letter == letter]
        writer.text(dialog_dir / "lab" / f"Ses{dialogue.session:02d}_{letter}" / f"{d}.lab",
                    [f"{d}.wav"] + [f"{u.start_s:.4f} {u.end_s:.4f} {u.utt_id}" for u in own])

    stereo = _dialogue_audio(rng, dialogue)
    wav_dir = session_dir / "sentences" / "wav" / d
    alignment_dir = session_dir / "sentences" / "ForcedAlignment" / d
    for u in dialogue.utterances:
        channel = 0 if u.speaker_letter == dialogue.mocap_letter else 1
        first = int(round(u.start_s * SAMPLE_RATE))
        writer.wav(wav_dir / f"{u.utt_id}.wav", np.ascontiguousarray(stereo[first : first + u.samples, channel]))
        if u.has_wdseg:
            writer.text(alignment_dir / f"{u.utt_id}.wdseg", _wdseg_lines(rng, u))
    if video:
        writer.wav(dialog_dir / "wav" / f"{d}.wav", stereo)
        avi = dialog_dir / "avi" / "DivX" / f"{d}.avi"
        writer.folder(avi.parent)
        write_dialogue_avi(avi, stereo, discs=_face_discs(dialogue))
        writer.files += 1
        writer.bytes += avi.stat().st_size


def _dialogue_audio(rng: np.random.Generator, dialogue: SynthDialogue) -> np.ndarray:
    """``(n, 2)`` int16: noise plus a tone per utterance on its speaker's channel."""
    total = int(round(dialogue.duration_s * SAMPLE_RATE))
    signal = rng.standard_normal(size=(total, 2), dtype=np.float32) * np.float32(NOISE_STD)
    for index, u in enumerate(dialogue.utterances):
        channel = 0 if u.speaker_letter == dialogue.mocap_letter else 1
        first = int(round(u.start_s * SAMPLE_RATE))
        base = 220.0 if u.speaker_letter == "F" else 120.0
        # Cue corpora speak with harmonics and the cue's prosody; others with the plain tone.
        voice = {"loudness": u.cue.loudness, "glide": u.cue.glide, "harmonics": VOICE_HARMONICS} if u.cue else {}
        pitch = u.cue.pitch if u.cue else 1.0
        signal[first : first + u.samples, channel] += tone(u.samples, (base + 10.0 * (index % 12)) * pitch, **voice)
    return np.clip(np.round(signal), -32768, 32767).astype(np.int16)


def _face_discs(dialogue: SynthDialogue) -> tuple[FaceDisc, ...]:
    """The face discs of the utterances whose cue shows one, in their speaker's half."""
    return tuple(FaceDisc(u.start_s, u.end_s, u.speaker_letter == dialogue.mocap_letter, u.cue.face, u.cue.radius)
                 for u in dialogue.utterances if u.cue is not None and u.cue.face is not None)


def _vad(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(x) for x in rng.integers(1, 6, size=3))


def _emo_lines(rng: np.random.Generator, dialogue: SynthDialogue) -> list[str]:
    lines = [_EMO_HEADER, ""]
    # F blocks first, then M, each by start time: the release's non-chronological layout.
    blocks = sorted(dialogue.utterances, key=lambda u: (u.speaker_letter != "F", u.start_s))
    empty_dom = next(u.utt_id for u in blocks if u.speaker_letter == "M") if any(
        u.speaker_letter == "M" for u in blocks) else blocks[0].utt_id
    dialogue.empty_dom_utt = empty_dom
    for u in blocks:
        ratings = [_vad(rng) for _ in u.votes]
        dom_values = [r[2] for i, r in enumerate(ratings) if not (u.utt_id == empty_dom and i == 0)]
        mean = (np.mean([r[0] for r in ratings]), np.mean([r[1] for r in ratings]), np.mean(dom_values))
        lines.append(f"[{u.start_s:.4f} - {u.end_s:.4f}]\t{u.utt_id}\t{u.code}\t"
                     f"[{mean[0]:.4f}, {mean[1]:.4f}, {mean[2]:.4f}]")
        for rater, categories in u.votes:
            comment = str(rng.choice(["", "", "curious", "tense", "amused"]))
            lines.append(f"C-{rater}:\t{'; '.join(categories)};\t({comment})")
        for i, ((rater, _), (val, act, dom)) in enumerate(zip(u.votes, ratings)):
            dom_text = "" if (u.utt_id == empty_dom and i == 0) else str(dom)
            lines.append(f"A-{rater}:\tval {val}; act {act}; dom  {dom_text};\t()")
        lines.append("")
    return lines


def _write_emo_subfolders(writer: TreeWriter, emo_dir: Path, dialogue: SynthDialogue) -> None:
    d = dialogue.dialog_id
    by_rater: dict[str, list[str]] = {}
    for u in dialogue.utterances:
        for rater, categories in u.votes:
            by_rater.setdefault(rater, []).append(f"{u.utt_id} :{'; '.join(categories)}; ()")
    external = sorted(r for r in by_rater if r.startswith("E"))
    writer.text(emo_dir / "Categorical" / f"{d}_{external[0].lower()}_cat.txt", by_rater[external[0]])
    writer.text(emo_dir / "Attribute" / f"{d}_{external[0].lower()}_atr.txt",
                [f"{line.split(' :')[0]} :act 3; val 3; dom 3; ()" for line in by_rater[external[0]]])
    self_lines = [f"{u.utt_id} :{'; '.join(u.votes[0][1])}; ()" for u in dialogue.utterances]
    writer.text(emo_dir / "Self-evaluation" / f"{d}_self_cat.txt", self_lines)


def _transcription_lines(rng: np.random.Generator, dialogue: SynthDialogue) -> list[str]:
    entries = [(u.start_s, f"{u.utt_id} [{u.start_s:08.4f}-{u.end_s:08.4f}]: {u.text}") for u in dialogue.utterances]
    if dialogue.out_of_order and len(entries) > 2:
        # Swap an overlapping pair when there is one (the later starter was written first).
        i = 0 if dialogue.utterances[1].start_s < dialogue.utterances[0].end_s else int(rng.integers(len(entries) - 1))
        entries[i], entries[i + 1] = entries[i + 1], entries[i]
    lines = [text for _, text in entries]
    for k in range(dialogue.xx_lines):
        letter = str(rng.choice(["F", "M"]))
        start = round(float(rng.uniform(0.0, max(dialogue.duration_s - 1.0, 0.1))), 4)
        xx = f"{dialogue.dialog_id}_{letter}XX{k} [{start:08.4f}-{start + 0.5:08.4f}]: [GARBAGE]"
        lines.insert(int(rng.integers(1, len(lines))), xx)
    for _ in range(dialogue.comment_lines):
        lines.insert(int(rng.integers(1, len(lines))), _TRANSCRIPT_COMMENT)
    return lines


def _wdseg_lines(rng: np.random.Generator, u: SynthUtterance) -> list[str]:
    """Sphinx-3 layout; fills ``u.words`` with the alignment a reader must return."""
    tokens = list(u.tokens)
    if u.variant_token is not None:
        tokens[u.variant_token] = tokens[u.variant_token] + "(2)"
    if len(tokens) >= 2:
        tokens.insert(int(rng.integers(1, len(tokens))), _SILENCE_FILL)
    segments = ["<s>"] + tokens + ["</s>"]
    frames = u.samples // (SAMPLE_RATE // 100)
    if frames < len(segments):
        raise ConfigError(f"{u.utt_id}: {frames} frames cannot hold {len(segments)} segments; use longer utterances")
    sizes = 1 + rng.multinomial(frames - len(segments), np.full(len(segments), 1.0 / len(segments)))
    lines = ["\t SFrm  EFrm    SegAScr Word"]
    first, total = 0, 0
    u.words = []
    for word, size in zip(segments, sizes):
        last = first + int(size) - 1
        score = -int(rng.integers(20_000, 200_000))
        total += score
        lines.append(f"\t{first:5d} {last:5d} {score:10d} {word}")
        if word not in ("<s>", "</s>", _SILENCE_FILL):
            u.words.append({"word": word.removesuffix("(2)"), "start_s": first / 100, "end_s": (last + 1) / 100})
        first = last + 1
    lines.append(f" Total score: {total:11d}")
    return lines
