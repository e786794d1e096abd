"""Per-utterance media decoding and ImageBind preprocessing (no torchaudio, no pytorchvideo).

* :mod:`dgnode.media.video`: frames of ``[start_s, end_s]`` from the dialogue AVI (decord,
  only the 10 needed frames), speaker crop, ImageBind's clips/resize/crops -> ``(15, 3, 2, 224, 224)``.
* :mod:`dgnode.media.audio`: utterance wav (or the AVI's track), 16 kHz, Kaldi fbank in torch
  -> ``(3, 1, 128, 204)``.
* :mod:`dgnode.media.text`: noise tags out, ImageBind's BPE tokenizer -> 77 ids.
* :mod:`dgnode.media.utterance`: the batch function the extraction pipeline's CPU stage runs.
* :mod:`dgnode.media.memprobe`: memory measurement of segment decoding in a fresh process.
"""
