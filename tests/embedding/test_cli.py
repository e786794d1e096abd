"""``dgnode extract`` options -> ExtractConfig: YAML (``--config``), then flags; bad values are one line."""

from __future__ import annotations

import pytest

from dgnode.command import run_command
from dgnode.embedding.cli import COMMANDS
from dgnode.embedding.config import ExtractConfig
from dgnode.embedding.summary import ExtractSummary
from dgnode.options import ConfigError, parse


@pytest.fixture
def extract(monkeypatch):
    """Run ``dgnode extract ARGS`` with the extraction replaced: returns (exit code, config)."""
    seen: list = []

    def fake_run_extraction(config, engine):
        seen.append(config)
        return ExtractSummary(0, 0, 0, engine=engine)

    monkeypatch.setattr("dgnode.embedding.pipeline.run_extraction", fake_run_extraction)

    def run(argv: list[str]):
        code = run_command(COMMANDS, ["extract", "--json", *argv])
        return code, (seen.pop() if seen else None)

    return run


def test_flags_override_yaml(tmp_path, extract):
    yaml_file = tmp_path / "extract.yaml"
    yaml_file.write_text("model: tiny\ngpu_memory_gb: 40\nmedia:\n  video:\n    clips_per_video: 3\n  audio:\n"
                         "    num_mel_bins: 64\n", encoding="utf-8")
    code, config = extract([
        "--manifest", "scan/manifest.parquet", "--store", "feat", "--config", str(yaml_file),
        "--gpu_memory_gb", "16", "--modalities", "[vision,text]", "--media.video.crop", "full",
        "--media.text.keep_noise_tags", "--limit", "5", "--dtype", "bfloat16",
    ])
    assert code == 0
    assert (config.manifest, config.store, config.model) == ("scan/manifest.parquet", "feat", "tiny")
    assert config.gpu_memory_gb == 16.0 and config.limit == 5 and config.dtype == "bfloat16"
    assert config.modalities == ["text", "vision"]  # canonical order
    assert config.media.video.crop == "full" and config.media.video.clips_per_video == 3
    assert config.media.audio.num_mel_bins == 64 and config.media.text.keep_noise_tags is True
    assert config.model == "tiny" and config.address is None and config.checkpoint is None


def test_defaults_and_bad_options(extract, capsys):
    code, config = extract(["--manifest", "m", "--store", "s"])
    assert code == 0
    assert (config.model, config.gpu_memory_gb, config.media.video.crop, config.modalities, config.dtype) == (
        "huge", 24.0, "speaker", ["text", "audio", "vision"], "auto")
    capsys.readouterr()
    assert extract(["--manifest", "m", "--store", "s", "--modalities", "[text,depth]"]) == (2, None)
    assert "modalities must be a non-empty subset" in capsys.readouterr().err
    assert extract(["--manifest", "m", "--store", "s", "--media.video.fps", "30"]) == (2, None)
    assert "media.video.fps" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="unknown key"):
        parse(ExtractConfig, {"manifest": "m", "store": "s", "media": {"video": {"fps": 30}}})
    assert extract(["--store", "s"]) == (2, None)
    assert "--manifest and --store are required" in capsys.readouterr().err
