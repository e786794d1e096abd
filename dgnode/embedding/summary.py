"""What an extraction run did: per written batch (:class:`BatchReport`) and in all (:class:`ExtractSummary`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["BatchReport", "ExtractSummary"]


@dataclass
class BatchReport:
    """What one written batch did; passed to ``on_batch``."""

    index: int
    stored: int
    failed: int
    utt_ids: list[str]


@dataclass
class ExtractSummary:
    """Counts, timings and memory of one run (printed by ``dgnode extract`` as a table or JSON)."""

    manifest_utterances: int
    already_stored: int
    requested: int
    stored: int = 0
    failed: int = 0
    duplicates: int = 0
    failures_by_modality: dict[str, int] = field(default_factory=dict)
    audio_from_video: int = 0
    batches: int = 0
    wall_seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    peak_memory_bytes: int = 0
    memory_kind: str = ""
    oom_retries: int = 0
    batch_plan: dict[str, int] = field(default_factory=dict)
    ray_batch_size: int = 0
    engine: str = "ray"
    device: str = "cpu"
    # Per node id: media objects fetched from object storage (files, bytes) and cache hits.
    fetched: dict[str, dict[str, int]] = field(default_factory=dict)

    def count_fetched(self, node: str, files: int, size: int, hits: int) -> None:
        counts = self.fetched.setdefault(node, {"files": 0, "bytes": 0, "hits": 0})
        counts["files"] += files
        counts["bytes"] += size
        counts["hits"] += hits

    @property
    def fetched_bytes(self) -> int:
        return sum(counts["bytes"] for counts in self.fetched.values())

    @property
    def utterances_per_second(self) -> float:
        done = self.stored + self.failed
        return done / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items()}
        data["utterances_per_second"] = self.utterances_per_second
        data["fetched_bytes"] = self.fetched_bytes
        return data

    def metrics(self) -> dict[str, float]:
        """Numbers for MLflow: counts, rate, wall time, and per node what it fetched
        (``extract.fetched_bytes.<node id>``)."""
        out = {f"extract.{key}": float(getattr(self, key)) for key in
               ("manifest_utterances", "already_stored", "stored", "failed", "duplicates", "wall_seconds",
                "utterances_per_second", "fetched_bytes")}
        for node, counts in sorted(self.fetched.items()):
            for key, value in counts.items():
                out[f"extract.fetched_{key}.{node}"] = float(value)
        return out

    def table(self):
        from rich.table import Table

        table = Table(title=f"dgnode extract ({self.engine}, {self.device})", show_header=True)
        table.add_column("quantity")
        table.add_column("value", justify="right")
        rows = [
            ("utterances in manifest", self.manifest_utterances),
            ("skipped (already stored)", self.already_stored),
            ("requested this run", self.requested),
            ("stored", self.stored),
            ("failed", self.failed),
            ("not stored again (stored meanwhile by another writer)", self.duplicates),
            *((f"  failed: {m}", n) for m, n in sorted(self.failures_by_modality.items())),
            ("audio from the video (wav missing)", self.audio_from_video),
            ("batches written", self.batches),
            ("utterances / s", f"{self.utterances_per_second:.2f}"),
            ("wall time, s", f"{self.wall_seconds:.1f}"),
            *((f"time {stage}, s", f"{seconds:.1f}") for stage, seconds in self.stage_seconds.items()),
            (f"peak memory per batch ({self.memory_kind or 'n/a'}), MB", f"{self.peak_memory_bytes / 1e6:.0f}"),
            ("OOM retries", self.oom_retries),
            ("batch sizes (plan)", ", ".join(f"{m} {n}" for m, n in self.batch_plan.items())),
        ]
        for node, counts in sorted(self.fetched.items()):
            rows.append((f"fetched on node {node[:12]}", f"{counts['files']} files, {counts['bytes'] / 1e6:.1f} MB, "
                                                         f"{counts['hits']} cache hits"))
        for name, value in rows:
            table.add_row(name, str(value))
        return table
