"""Per-utterance media decoding and ImageBind preprocessing (no torchaudio, no pytorchvideo).

* :mod:`dgnode.media.video`: frames of ``[start_s, end_s]`` from the dialogue AVI (decord,
  only the 10 needed frames), speaker crop, ImageBind's clips/resize/crops -> ``(15, 3, 2, 224, 224)``.
* :mod:`dgnode.media.audio`: utterance wav (or the AVI's track), 16 kHz, Kaldi fbank in torch
  -> ``(3, 1, 128, 204)``.
* :mod:`dgnode.media.text`: noise tags out, ImageBind's BPE tokenizer -> 77 ids.
* :mod:`dgnode.media.clips`: the clip time points ImageBind samples from a segment.
* :mod:`dgnode.media.utterance`: the batch function the extraction pipeline's CPU stage runs.
* :mod:`dgnode.media.fetch`: media in object storage (``s3://``), fetched once per node into a
  bounded local cache.
* :mod:`dgnode.media.config`: every preprocessing parameter (torch-free).

Names are imported lazily so that ``dgnode --help`` does not load torch or decord.
"""

from __future__ import annotations

from dgnode.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "dgnode.media.config": ("AudioConfig", "MediaCacheConfig", "MediaConfig", "TextConfig", "VideoConfig"),
    "dgnode.media.fetch": ("FetchStats", "MediaCache"),
    "dgnode.media.audio": ("kaldi_fbank", "load_utterance_audio", "read_video_audio", "waveform_to_imagebind"),
    "dgnode.media.clips": ("clip_timepoints",),
    "dgnode.media.text": ("clean_transcript", "tokenize"),
    "dgnode.media.utterance": ("FETCH_COLUMNS", "REQUEST_COLUMNS", "preprocess_batch"),
    "dgnode.media.video": ("VideoSource", "crop_speaker", "frames_to_imagebind", "read_video_segment"),
})
