"""How the decode stage cuts the pending manifest rows into blocks."""

from __future__ import annotations

import pandas as pd

from dgnode.embedding.stages import decode_chunks
from dgnode.media.utterance import REQUEST_COLUMNS


def _pending(prefix: str) -> pd.DataFrame:
    rows = [(d, f"{d}_F{i:03d}", i) for d, n in (("Ses01F_impro01", 5), ("Ses01F_impro02", 2)) for i in range(n)]
    frame = pd.DataFrame(rows, columns=["dialog_id", "utt_id", "order"])
    frame["wav_path"] = [f"{prefix}/wav/{u}.wav" for u in frame["utt_id"]]
    frame["video_path"] = [f"{prefix}/avi/{d}.avi" for d in frame["dialog_id"]]
    frame["start_s"], frame["end_s"], frame["speaker_side"], frame["text"] = 0.0, 1.0, "left", "hi"
    return frame


def test_local_media_keep_fixed_size_blocks():
    chunks = decode_chunks(_pending("/data"), 2)
    assert [len(c) for c in chunks] == [2, 2, 2, 1]
    assert list(chunks[0].columns) == list(REQUEST_COLUMNS)


def test_remote_media_make_one_block_per_dialogue():
    pending = _pending("s3://bucket/iemocap")
    chunks = decode_chunks(pending, 2)
    assert [len(c) for c in chunks] == [5, 2]
    assert [c["video_path"].nunique() for c in chunks] == [1, 1]
    assert pd.concat(chunks)["utt_id"].tolist() == pending["utt_id"].tolist()
