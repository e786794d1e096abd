"""``dgnode extract`` options -> ExtractConfig: YAML, --set overrides, then explicit flags."""

from __future__ import annotations

import argparse

import pytest

from dgnode.options import ConfigError
from dgnode.embedding.cli import add_extract_arguments, config_from_args
from dgnode.errors import InputError


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_extract_arguments(parser)
    return parser.parse_args(argv)


def test_flags_override_yaml_and_set(tmp_path):
    yaml_file = tmp_path / "extract.yaml"
    yaml_file.write_text("model: tiny\ngpu_memory_gb: 40\nmedia:\n  video:\n    clips_per_video: 3\n", encoding="utf-8")
    config = config_from_args(_parse([
        "--manifest", "scan/manifest.parquet", "--store", "feat", "--config", str(yaml_file),
        "--set", "gpu_memory_gb=12", "--set", "media.audio.num_mel_bins=64", "--gpu-memory-gb", "16",
        "--modalities", "vision,text", "--crop", "full", "--keep-noise-tags", "--limit", "5",
    ]))
    assert (config.manifest, config.store, config.model) == ("scan/manifest.parquet", "feat", "tiny")
    assert config.gpu_memory_gb == 16.0 and config.limit == 5
    assert config.modalities == ["text", "vision"]  # canonical order
    assert config.media.video.crop == "full" and config.media.video.clips_per_video == 3
    assert config.media.audio.num_mel_bins == 64 and config.media.text.keep_noise_tags is True
    assert config.model == "tiny" and config.address is None and config.checkpoint is None


def test_defaults_and_bad_options():
    config = config_from_args(_parse(["--manifest", "m", "--store", "s"]))
    assert (config.model, config.gpu_memory_gb, config.media.video.crop, config.modalities) == (
        "huge", 24.0, "speaker", ["text", "audio", "vision"])
    with pytest.raises(ConfigError, match="modalities must be a non-empty subset"):
        config_from_args(_parse(["--manifest", "m", "--store", "s", "--modalities", "text,depth"]))
    with pytest.raises(ConfigError, match="unknown key"):
        config_from_args(_parse(["--manifest", "m", "--store", "s", "--set", "media.video.fps=30"]))
    with pytest.raises(InputError, match="--manifest and --store are required"):
        config_from_args(_parse(["--store", "s"]))
