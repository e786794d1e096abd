"""What an extraction reports about the media each node fetched."""

from __future__ import annotations

import io

from rich.console import Console

from dgnode.embedding.summary import ExtractSummary


def test_fetched_media_are_counted_per_node_and_reported():
    summary = ExtractSummary(manifest_utterances=4, already_stored=0, requested=4, stored=4)
    summary.count_fetched("a" * 56, 2, 3000, 1)
    summary.count_fetched("a" * 56, 1, 500, 4)
    summary.count_fetched("b" * 56, 1, 700, 0)
    assert summary.fetched["a" * 56] == {"files": 3, "bytes": 3500, "hits": 5}
    assert summary.fetched_bytes == summary.as_dict()["fetched_bytes"] == 4200
    metrics = summary.metrics()
    assert metrics["extract.fetched_bytes"] == 4200.0 and metrics["extract.stored"] == 4.0
    assert metrics[f"extract.fetched_bytes.{'b' * 56}"] == 700.0 and metrics[f"extract.fetched_hits.{'a' * 56}"] == 5.0
    out = io.StringIO()
    Console(file=out, width=200).print(summary.table())
    assert "fetched on node aaaaaaaaaaaa" in out.getvalue() and "3 files, 0.0 MB, 5 cache hits" in out.getvalue()
