"""Synthetic features over the full IEMOCAP structure: synthesis and loading times.

Baseline in the same run: the floor of drawing the same number of random values and writing
them to a store. Prints JSON. Run: ``.venv/bin/python bench/bench_features.py``.
"""

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from dgnode.features.synth import synthesize_features, read_structure
from dgnode.features.store import FeatureStore, StoreMetadata
from dgnode.features.dataset import load_conversations, iterate_batches

S = str(Path(__file__).resolve().parents[1] / "dgnode" / "data" / "iemocap_structure.json")
dims = {"text": 1024, "audio": 1582, "vision": 342}
out = {}
with tempfile.TemporaryDirectory() as tmp:
    t = time.perf_counter(); store = synthesize_features(S, Path(tmp) / "synth", dims, 0); out["synth_s"] = time.perf_counter() - t
    st = read_structure(S); n = sum(map(len, st.labels))
    t = time.perf_counter()
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"dialog_id": ["d"] * n, "utt_id": [f"u{i}" for i in range(n)], "order": np.arange(n), "speaker": ["s"] * n, "label": [0] * n, "split": ["train"] * n})
    for m, d in dims.items():
        frame[m] = list(rng.standard_normal((n, d), dtype=np.float32))
    FeatureStore.create(Path(tmp) / "floor", StoreMetadata(model="x", dims=dims, label_names=["a"])).append(frame)
    out["floor_rng_plus_write_s"] = time.perf_counter() - t
    out["synth_over_floor"] = out["synth_s"] / out["floor_rng_plus_write_s"]
    def best(f, k=3):
        times = []
        for _ in range(k):
            t = time.perf_counter(); r = f(); times.append(time.perf_counter() - t)
        return r, min(times)
    raw, out["store_load_s"] = best(store.load)
    data, out["load_conversations_s"] = best(lambda: load_conversations(store))
    out["load_conversations_over_store_load"] = out["load_conversations_s"] / out["store_load_s"]
    t = time.perf_counter(); nb = sum(1 for _ in iterate_batches(data.conversations, 16, True)); out["one_epoch_of_batches_s"] = time.perf_counter() - t
out["utterances"] = n; out["dims_total"] = sum(dims.values())
print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}, indent=1))
