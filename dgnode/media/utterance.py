"""The CPU stage of extraction: manifest rows -> ImageBind inputs, one error string per modality.

:func:`preprocess_batch` is what Ray Data runs in ``map_batches`` tasks (and what the
single-process loop runs). One bad item never fails the batch: its tensor is zeros and its
``error_<modality>`` column says what went wrong; the driver turns that into a failure row.

Output columns, one row per input row (``n`` rows):

==================  ===================================  =====================================
column              shape / dtype                        meaning
==================  ===================================  =====================================
utt_id              (n,) str
text                (n,) str                             cleaned transcript; the embedding
                                                         actor tokenizes it (77 BPE ids), so
                                                         decode workers never load ImageBind
audio               (n, 3, 1, 128, 204) float32          normalised fbank clips
vision              (n, 15, 3, 2, 224, 224) float16      normalised clips x crops; float16
                                                         halves the object-store traffic (the
                                                         GPU model runs in float16 anyway)
error_<modality>    (n,) str                             "" when the input is good
frame_indices       (n, 10) int64                        frames used (-1 when vision failed)
frame_times         (n, 10) float64                      their timestamps in the video, s
frames_clamped      (n, 5) bool                          clip had no frame in its window
audio_source        (n,) str                             "wav", "avi" (fallback) or ""
audio_notes         (n,) str                             why the wav was not used
seconds_<modality>  (n,) float64                         CPU time spent on the row
fetched_files       (n,) int64                           objects this batch downloaded into
fetched_bytes       (n,) int64                           the node's media cache, their bytes,
fetch_hits          (n,) int64                           and uses served from the cache: the
                                                         batch's counts on its first row, 0 on
                                                         the others (sums stay right when Ray
                                                         splits or merges blocks); only with
                                                         audio or vision
==================  ===================================  =====================================

Media paths are local or ``s3://`` URIs; the latter are read through the node's
:class:`~dgnode.media.fetch.MediaCache` (each object downloaded once per node).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Sequence

import numpy as np
import pandas as pd

from dgnode.media.audio import load_utterance_audio, waveform_to_imagebind
from dgnode.media.text import clean_transcript
from dgnode.media.video import VideoSource, frames_to_imagebind, segment_frames
from dgnode.media.config import AudioConfig, MediaConfig, TextConfig, VideoConfig
from dgnode.media.fetch import MediaCache

__all__ = ["FETCH_COLUMNS", "REQUEST_COLUMNS", "VISION_TRANSPORT_DTYPE", "preprocess_batch"]

REQUEST_COLUMNS = ("utt_id", "start_s", "end_s", "speaker_side", "text", "wav_path", "video_path")
FETCH_COLUMNS = ("fetched_files", "fetched_bytes", "fetch_hits")
VISION_TRANSPORT_DTYPE = np.float16


def _present(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and np.isnan(value)) and value is not pd.NA


def _describe(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".strip()


def preprocess_batch(
    rows: pd.DataFrame, modalities: Sequence[str], config: MediaConfig | None = None, cache: MediaCache | None = None
) -> dict[str, np.ndarray]:
    """Preprocess manifest rows (columns :data:`REQUEST_COLUMNS`) for ``modalities``; remote
    media come through ``cache`` (default: the node's, with the default bound)."""
    config = config or MediaConfig()
    cache = cache or MediaCache()
    before = dataclasses.replace(cache.stats)
    out: dict[str, np.ndarray] = {"utt_id": rows["utt_id"].astype(str).to_numpy()}
    records = rows.reset_index(drop=True)
    if "text" in modalities:
        _text(records, out, config.text)
    if "audio" in modalities:
        _audio(records, out, config.audio, cache)
    if "vision" in modalities:
        _vision(records, out, config.video, cache)
    if {"audio", "vision"} & set(modalities):
        done = cache.stats.minus(before)
        for column, value in zip(FETCH_COLUMNS, (done.files, done.bytes, done.hits)):
            out[column] = np.zeros(len(records), np.int64)
            if len(records):
                out[column][0] = value
    for key, value in list(out.items()):
        if value.dtype == object:
            out[key] = value.astype(str)
    return out


def _text(rows: pd.DataFrame, out: dict[str, np.ndarray], config: TextConfig) -> None:
    n = len(rows)
    errors = np.full(n, "", dtype=object)
    texts = np.full(n, "", dtype=object)
    started = time.perf_counter()
    for i, text in enumerate(rows["text"]):
        if _present(text):
            texts[i] = clean_transcript(str(text), config.keep_noise_tags)
        else:
            errors[i] = "no transcript in the manifest"
    seconds = np.full(n, (time.perf_counter() - started) / max(n, 1))
    out["text"], out["error_text"], out["seconds_text"] = texts, errors, seconds


def _audio(rows: pd.DataFrame, out: dict[str, np.ndarray], config: AudioConfig, cache: MediaCache) -> None:
    n = len(rows)
    clips = np.zeros((n, config.clips_per_video, 1, config.num_mel_bins, config.target_length), np.float32)
    errors = np.full(n, "", dtype=object)
    sources = np.full(n, "", dtype=object)
    notes = np.full(n, "", dtype=object)
    seconds = np.zeros(n)
    for i, row in enumerate(rows.itertuples(index=False)):
        started = time.perf_counter()
        try:
            segment = load_utterance_audio(
                row.wav_path if _present(row.wav_path) else None,
                row.video_path if _present(row.video_path) else None,
                float(row.start_s),
                float(row.end_s),
                config.sample_rate,
                cache,
            )
            clips[i] = waveform_to_imagebind(segment.waveform, config).numpy()
            sources[i], notes[i] = segment.source, "; ".join(segment.notes)
        except Exception as error:  # noqa: BLE001 - recorded per item, the batch goes on
            errors[i] = _describe(error)
        seconds[i] = time.perf_counter() - started
    out.update(audio=clips, error_audio=errors, audio_source=sources, audio_notes=notes, seconds_audio=seconds)


def _vision(rows: pd.DataFrame, out: dict[str, np.ndarray], config: VideoConfig, cache: MediaCache) -> None:
    n = len(rows)
    pixels = np.zeros((n, *config.output_shape), VISION_TRANSPORT_DTYPE)
    errors = np.full(n, "", dtype=object)
    indices = np.full((n, config.frames_per_item), -1, np.int64)
    times = np.full((n, config.frames_per_item), np.nan)
    clamped = np.zeros((n, config.clips_per_video), bool)
    seconds = np.zeros(n)
    # One open reader per dialogue video: utterances of a dialogue usually share a batch.
    by_video: dict[str, list[int]] = {}
    for i, path in enumerate(rows["video_path"]):
        if _present(path):
            by_video.setdefault(str(path), []).append(i)
        else:
            errors[i] = "no video path in the manifest"
    for path, members in by_video.items():
        with contextlib.ExitStack() as held:  # the cached copy stays while its utterances are cut
            started = time.perf_counter()
            try:
                source: VideoSource | None = VideoSource(held.enter_context(cache.local(path)), config.decode_threads)
            except Exception as error:  # noqa: BLE001
                source = None
                for i in members:
                    errors[i] = f"{path}: unreadable video ({_describe(error)})"
            opened = (time.perf_counter() - started) / len(members)
            if source is None:
                seconds[members] = opened
                continue
            _cut(rows, members, source, path, opened, config, (pixels, errors, indices, times, clamped, seconds))
    out.update(
        vision=pixels, error_vision=errors, frame_indices=indices, frame_times=times,
        frames_clamped=clamped, seconds_vision=seconds,
    )


def _cut(rows: pd.DataFrame, members: list[int], source: VideoSource, path: str, opened: float, config: VideoConfig,
         arrays: tuple[np.ndarray, ...]) -> None:
    """Each member utterance's frames from the open video, into the output arrays: every member's
    frames first, then the reader is closed (its buffers go: see :meth:`VideoSource.close`), then
    the frames are turned into ImageBind's input."""
    pixels, errors, indices, times, clamped, seconds = arrays
    decoded = {}
    for i in members:
        started = time.perf_counter()
        row = rows.iloc[i]
        try:
            decoded[i] = segment_frames(source, float(row["start_s"]), float(row["end_s"]), row["speaker_side"], config)
        except Exception as error:  # noqa: BLE001
            errors[i] = f"{path}: {_describe(error)}"
        seconds[i] = opened + time.perf_counter() - started
    source.close()
    for i, (frames, plan) in decoded.items():
        started = time.perf_counter()
        try:
            pixels[i] = frames_to_imagebind(frames, config).numpy().astype(VISION_TRANSPORT_DTYPE)
            indices[i] = plan.indices.reshape(-1)
            times[i] = plan.times.reshape(-1)
            clamped[i] = plan.clamped
        except Exception as error:  # noqa: BLE001
            errors[i] = f"{path}: {_describe(error)}"
        seconds[i] += time.perf_counter() - started
