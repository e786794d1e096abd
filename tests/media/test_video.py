"""Video: which frames a segment uses, the speaker crop, and ImageBind's transform."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from dgnode.corpus import synth_media
from dgnode.media.clips import clip_timepoints
from dgnode.media.config import CLIP_MEAN, CLIP_STD, VideoConfig
from dgnode.media.video import (
    VideoSource,
    crop_speaker,
    frames_to_imagebind,
    plan_segment_frames,
    read_video_segment,
)

FPS = float(synth_media.VIDEO_FPS)  # 29.97...


def test_clip_timepoints_follow_constant_clips_per_video_sampler():
    assert clip_timepoints(10, 2, 5) == [(Fraction(k * 8, 5), Fraction(k * 8, 5) + 2) for k in range(5)]
    assert clip_timepoints(Fraction(13, 10), 2, 3) == [(0, 2)] * 3  # shorter than a clip: identical clips
    assert clip_timepoints(2, 2, 5) == [(0, 2)] * 5


def test_frame_plan_of_a_segment_matches_hand_computed_indices():
    plan = plan_segment_frames(0.5, 2.7, FPS, 300)
    # Clip k covers [0.5 + 0.04k, 2.5 + 0.04k]; frames ceil(fps a) .. ceil(fps b) - 1, first and last.
    expected = []
    for k in range(5):
        first = math.ceil(FPS * (0.5 + 0.04 * k))
        last = math.ceil(FPS * (2.5 + 0.04 * k)) - 1
        expected.append([first, last])
    assert plan.indices.tolist() == expected == [[15, 74], [17, 76], [18, 77], [19, 78], [20, 79]]
    assert not plan.clamped.any()


@pytest.mark.parametrize("start,end", [(0.0, 1.0), (0.5, 2.7), (1.234, 7.9), (3.0, 3.02), (4.1, 9.9), (0.2, 10.0)])
def test_frames_used_lie_inside_the_utterance_span(start, end):
    plan = plan_segment_frames(start, end, FPS, 300)
    assert plan.indices.shape == (5, 2)
    assert not plan.clamped.any()
    assert np.all(plan.times >= start - 1e-9) and np.all(plan.times < end)


def test_segment_shorter_than_a_frame_repeats_the_frame_on_screen():
    plan = plan_segment_frames(3.001, 3.002, FPS, 300)
    assert plan.clamped.all()
    assert plan.indices.tolist() == [[89, 89]] * 5  # frame 89 is shown from 2.970 s to 3.003 s
    assert plan.times[0, 0] <= 3.001 < plan.times[0, 0] + 1 / FPS


def test_segment_running_past_the_video_end_is_clamped_and_one_after_it_fails():
    inside_then_past = plan_segment_frames(9.5, 12.0, FPS, 300)
    assert inside_then_past.indices.max() == 299 and inside_then_past.indices.min() == math.ceil(FPS * 9.5)
    last_frame_only = plan_segment_frames(9.99, 11.0, FPS, 300)
    assert last_frame_only.indices.tolist() == [[299, 299]] * 5 and last_frame_only.clamped.all()
    with pytest.raises(ValueError, match="starts after the video's last frame"):
        plan_segment_frames(10.5, 11.0, FPS, 300)
    with pytest.raises(ValueError, match=r"0 <= start <= end, got \[3.0, 2.0\]"):
        plan_segment_frames(3.0, 2.0, FPS, 300)
    with pytest.raises(ValueError, match="0 <= start <= end"):
        plan_segment_frames(-0.5, 2.0, FPS, 300)


def test_only_the_requested_frames_are_decoded_and_they_are_the_right_ones(dialogue):
    source = VideoSource(str(dialogue.avi))
    assert source.num_frames == dialogue.frames == 300
    assert source.fps == pytest.approx(FPS, abs=1e-6)
    indices = np.array([[0, 17], [150, 299]])
    frames = source.frames(indices)
    assert frames.shape == (2, 2, 480, 720, 3)
    decoded = [[synth_media.decode_frame_index(f) for f in clip] for clip in frames]
    assert decoded == indices.tolist()


def _denormalised_rgb(pixels: torch.Tensor) -> np.ndarray:
    """(3, T, H, W) normalised -> mean RGB in 0..255."""
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1, 1)
    rgb = (pixels * std + mean) * 255.0
    return rgb.reshape(3, -1).mean(dim=1).numpy()


@pytest.mark.parametrize("side,colour", [("left", synth_media.LEFT_HALF_RGB), ("right", synth_media.RIGHT_HALF_RGB)])
def test_speaker_crop_takes_that_speakers_half(dialogue, side, colour):
    segment = read_video_segment(str(dialogue.avi), 1.0, 3.5, side)
    assert segment.pixels.shape == (15, 3, 2, 224, 224) and segment.pixels.dtype == torch.float32
    # 360x480 -> 224x298: crops top/center/bottom; the clock rows only reach the bottom crop.
    for item in range(15):
        if item % 3 == 2:
            continue
        np.testing.assert_allclose(_denormalised_rgb(segment.pixels[item]), colour, atol=6)
    assert np.all(segment.plan.times >= 1.0) and np.all(segment.plan.times < 3.5)


def test_full_crop_keeps_both_halves(dialogue):
    segment = read_video_segment(str(dialogue.avi), 1.0, 3.5, None, VideoConfig(crop="full"))
    # 720x480 -> 336x224: crops left/center/right; columns < 150 of the left crop show the left
    # actor, the last 100 columns of the right crop the right actor (rows above the clock).
    left = segment.pixels[0][:, :, :200, :150]
    right = segment.pixels[2][:, :, :200, -100:]
    np.testing.assert_allclose(_denormalised_rgb(left), synth_media.LEFT_HALF_RGB, atol=6)
    np.testing.assert_allclose(_denormalised_rgb(right), synth_media.RIGHT_HALF_RGB, atol=6)


def test_speaker_crop_needs_a_side():
    with pytest.raises(ValueError, match="speaker_side must be 'left', 'right' or 'full'"):
        crop_speaker(np.zeros((1, 480, 720, 3), np.uint8), None)
    assert crop_speaker(np.zeros((1, 480, 720, 3), np.uint8), "right").shape == (1, 480, 360, 3)
    # MELD: one clip per utterance, several people in the shot: the whole frame is kept.
    assert crop_speaker(np.zeros((1, 252, 448, 3), np.uint8), "full").shape == (1, 252, 448, 3)


def _imagebind_reference(frames: np.ndarray) -> torch.Tensor:
    """ImageBind's own op order on (C, T, H, W) clips: /255, ShortSideScale, NormalizeVideo, SpatialCrop."""
    out = []
    for clip in frames:
        video = torch.from_numpy(clip).float().permute(3, 0, 1, 2) / 255.0  # (C, T, H, W)
        c, t, h, w = video.shape
        new_h, new_w = (int(math.floor(h / w * 224)), 224) if w < h else (224, int(math.floor(w / h * 224)))
        video = torch.nn.functional.interpolate(video, size=(new_h, new_w), mode="bilinear", align_corners=False)
        mean = torch.tensor(CLIP_MEAN).view(3, 1, 1, 1)
        std = torch.tensor(CLIP_STD).view(3, 1, 1, 1)
        video = (video - mean) / std
        for index in range(3):
            y = int(math.ceil((new_h - 224) / 2))
            x = int(math.ceil((new_w - 224) / 2))
            if new_h > new_w:
                y = {0: 0, 1: y, 2: new_h - 224}[index]
            else:
                x = {0: 0, 1: x, 2: new_w - 224}[index]
            out.append(video[:, :, y : y + 224, x : x + 224])
    return torch.stack(out)


@pytest.mark.parametrize("width", [360, 720])
def test_transform_equals_imagebinds_op_order(width):
    frames = np.random.default_rng(width).integers(0, 256, size=(5, 2, 480, width, 3), dtype=np.uint8)
    ours = frames_to_imagebind(frames)
    assert ours.shape == (15, 3, 2, 224, 224)
    torch.testing.assert_close(ours, _imagebind_reference(frames), atol=2e-5, rtol=0)


def test_unreadable_and_truncated_videos(dialogue, tmp_path):
    data = dialogue.avi.read_bytes()
    header_only = tmp_path / "header_only.avi"
    header_only.write_bytes(data[: len(data) // 100])
    with pytest.raises(Exception):
        VideoSource(str(header_only))
    half = tmp_path / "half.avi"
    half.write_bytes(data[: len(data) // 2])
    source = VideoSource(str(half))
    assert 0 < source.num_frames < 300
    end_of_data = source.num_frames / source.fps
    with pytest.raises(ValueError, match="truncated video or wrong times"):
        read_video_segment(source, end_of_data + 0.5, end_of_data + 2.0, "left")
    ok = read_video_segment(source, 0.5, 1.5, "left")
    assert ok.plan.indices.max() < source.num_frames
