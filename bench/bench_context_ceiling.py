"""How much the synthetic store's planted context can add: a ceiling for any context model.

``dgnode.features.synth`` plants context as a speaker's mood over the dialogue: every utterance of
speaker ``s`` in dialogue ``d`` carries ``Q^T f_{d,s}``, where ``f_{d,s}`` is that speaker's label
distribution over the dialogue. A sequence or graph model can at best *recover* ``f_{d,s}`` from
the other utterances. This benchmark hands it over instead: one multinomial logistic regression
on each utterance's standardised features (all modalities concatenated), and the same with the
**oracle context** appended, the true label distribution of the same speaker's *other* labelled
utterances in the dialogue (the utterance's own label excluded, so nothing leaks). Both are fitted
on train, their L2 strength picked on valid from a grid, and scored on test (weighted F1); the
first is the baseline measured in the same run.

The gap between them is what context is worth to a linear read-out of these features; a model
that scores near the oracle row has recovered about all the planted context there is, so two such
models (DGODE and the BiGRU at the paper's dims, README "DGODE and the baselines") cannot be told
apart on this store however long they train.

Run: ``.venv/bin/python bench/bench_context_ceiling.py [--store PATH] [--grid C,C,...]``
(without ``--store``: a store at the paper's dims, seed 0, in a temporary directory). Prints one
JSON object.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.report import emit  # noqa: E402
from dgnode.corpus.splits import STRUCTURE_PATH as STRUCTURE  # noqa: E402
from dgnode.features.cli import PAPER_DIMS  # noqa: E402
from dgnode.features.dataset import load_conversations  # noqa: E402
from dgnode.features.synth import synthesize_features  # noqa: E402
# The context columns are probabilities in [0, 1] beside standardised features of unit variance:
# scaled up so that the shared L2 penalty does not mute them.
CONTEXT_SCALE = 10.0


def utterance_rows(store) -> tuple[dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], list[str]]:
    """Per split: features ``(n, D)``, oracle context ``(n, C)`` and labels ``(n,)`` of the
    labelled utterances."""
    data = load_conversations(store, normalise="standard")
    classes = len(data.label_names)
    rows: dict[str, list] = {}
    for conversation in data.conversations:
        features = np.concatenate([conversation.features[m].numpy() for m in sorted(conversation.features)], axis=1)
        labels, speakers = conversation.labels.numpy(), conversation.speakers.numpy()
        for i in np.flatnonzero(labels >= 0):
            others = (speakers == speakers[i]) & (labels >= 0)
            others[i] = False
            context = np.bincount(labels[others], minlength=classes) / max(int(others.sum()), 1)
            rows.setdefault(conversation.split, []).append((features[i], context, labels[i]))
    stacked = {split: (np.stack([r[0] for r in items]), np.stack([r[1] for r in items]), np.array([r[2] for r in items]))
               for split, items in rows.items()}
    return stacked, data.label_names


def fit_and_score(splits, with_context: bool, grid: list[float]) -> dict:
    """The regularisation picked on valid from ``grid``; that classifier's valid and test weighted F1."""
    def design(split):
        features, context, _ = split
        return np.concatenate([features, CONTEXT_SCALE * context], axis=1) if with_context else features

    best = None
    for inverse_regularisation in grid:
        classifier = LogisticRegression(C=inverse_regularisation, max_iter=2000).fit(design(splits["train"]), splits["train"][2])
        valid = 100 * f1_score(splits["valid"][2], classifier.predict(design(splits["valid"])), average="weighted")
        if best is None or valid > best["valid_weighted_f1"]:
            test = 100 * f1_score(splits["test"][2], classifier.predict(design(splits["test"])), average="weighted")
            best = {"inverse_regularisation": inverse_regularisation, "valid_weighted_f1": round(valid, 2),
                    "test_weighted_f1": round(test, 2)}
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default=None, help="a feature store (default: a paper-dims synthetic store, seed 0)")
    parser.add_argument("--grid", default="1e-4,3e-4,1e-3,3e-3,1e-2",
                        help="LogisticRegression's C values, one picked per variant on the valid split")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or synthesize_features(STRUCTURE, Path(tmp) / "store", PAPER_DIMS, seed=0)
        splits, labels = utterance_rows(store)
        grid = [float(c) for c in args.grid.split(",")]
        started = time.perf_counter()
        baseline = fit_and_score(splits, False, grid)
        oracle = fit_and_score(splits, True, grid)
    emit({
        "benchmark": "context_ceiling",
        "store": str(args.store or f"synthetic, paper dims {PAPER_DIMS}, seed 0"),
        "labels": labels,
        "train_utterances": int(len(splits["train"][2])),
        "test_utterances": int(len(splits["test"][2])),
        "features_only": baseline,
        "with_oracle_context": oracle,
        "oracle_context_gain_points": round(oracle["test_weighted_f1"] - baseline["test_weighted_f1"], 2),
        "fit_seconds": round(time.perf_counter() - started, 1),
    }, args.out)


if __name__ == "__main__":
    main()
