"""Measure the memory of decoding one utterance's video segment, in a fresh process.

    python bench/memprobe.py VIDEO START_S END_S [--warmup VIDEO] [--whole | --utterance]

prints one JSON object: ``peak_rss_bytes`` (the process's resident high-water mark, ``VmHWM``),
``baseline_rss_bytes`` (resident size just before the measured decode), ``window_peak_bytes``
(highest resident size sampled every millisecond during it), ``delta_bytes`` (their difference)
and ``seconds``. ``--warmup`` decodes a segment of another video first, so code pages of torch
and decord that the first decode maps in are counted in the baseline of both runs being
compared, not in the measured decode. ``--whole`` decodes every frame of the video instead of
the segment (the naive approach, for comparison; keep such videos short). ``--utterance`` runs
the extraction's whole CPU stage on the segment instead (:func:`dgnode.media.utterance.preprocess_batch`:
video frames, the audio track, text) as for a MELD clip: full frame, no wav.

:func:`probe` runs it in a subprocess with glibc's mmap threshold fixed
(``MALLOC_MMAP_THRESHOLD_=131072``): by default glibc raises the threshold after large frees,
so whether a later 20 MB buffer is returned to the system depends on allocation history, and
one run in five kept an extra 150-200 MB resident. Fixing it measures what the decode needs,
not allocator luck.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


class _PeakSampler:
    def __init__(self, interval_s: float = 0.001) -> None:
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            time.sleep(self.interval_s)

    def __enter__(self) -> "_PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def decode_whole(path: str, side: str = "left") -> int:
    """Decode every frame and crop it (the approach segment decoding avoids); returns frames."""
    import decord

    reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
    frames = reader.get_batch(list(range(len(reader)))).asnumpy()
    half = frames.shape[2] // 2
    frames = frames[:, :, :half] if side == "left" else frames[:, :, half:]
    return int(frames.shape[0])


def preprocess_utterance(path: str, start_s: float, end_s: float) -> None:
    """The extraction's CPU stage for one utterance of a clip with its own audio track (MELD's)."""
    import pandas as pd

    from dgnode.media.utterance import preprocess_batch

    row = {"utt_id": "probe", "start_s": start_s, "end_s": end_s, "speaker_side": "full", "text": "probe",
           "wav_path": None, "video_path": path}
    out = preprocess_batch(pd.DataFrame([row]), ["text", "audio", "vision"])
    errors = [str(out[f"error_{m}"][0]) for m in ("audio", "vision") if str(out[f"error_{m}"][0])]
    if errors:
        raise RuntimeError("; ".join(errors))


def measure(path: str, start_s: float, end_s: float, warmup: str | None = None, whole: bool = False,
            utterance: bool = False) -> dict:
    from dgnode.media.video import read_video_segment

    if warmup:
        if utterance:
            preprocess_utterance(warmup, 0.0, 1.0)
        else:
            read_video_segment(warmup, 0.0, 1.0, "left")
    baseline = _rss()
    started = time.perf_counter()
    with _PeakSampler() as sampler:
        if whole:
            decode_whole(path)
        elif utterance:
            preprocess_utterance(path, start_s, end_s)
        else:
            read_video_segment(path, start_s, end_s, "left")
    return {
        "video": path,
        "whole": whole,
        "seconds": time.perf_counter() - started,
        "baseline_rss_bytes": baseline,
        "window_peak_bytes": sampler.peak,
        "delta_bytes": sampler.peak - baseline,
        "peak_rss_bytes": peak_rss_bytes(),
    }


def peak_rss_bytes() -> int:
    """This process's resident high-water mark: ``VmHWM`` of ``/proc/self/status``.

    Not ``ru_maxrss``: Linux keeps that across ``execve``, so a process started by a large
    parent reports the parent's peak (a 2 GB benchmark driver made every probe read 2.14 GB).
    ``VmHWM`` belongs to the address space, which ``execve`` replaces.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # not Linux: the best there is


def probe(
    video: str, start_s: float, end_s: float, warmup: str | None = None, whole: bool = False, timeout_s: float = 300,
    utterance: bool = False,
) -> dict:
    """:func:`measure` in a fresh Python process (see the module docstring); returns its JSON."""
    command = [sys.executable, str(Path(__file__).resolve()), str(video), str(start_s), str(end_s)]
    if warmup:
        command += ["--warmup", str(warmup)]
    if whole:
        command.append("--whole")
    if utterance:
        command.append("--utterance")
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", OMP_NUM_THREADS="1")
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout_s, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"memory probe failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/memprobe.py", description=__doc__)
    parser.add_argument("video")
    parser.add_argument("start_s", type=float)
    parser.add_argument("end_s", type=float)
    parser.add_argument("--warmup")
    parser.add_argument("--whole", action="store_true")
    parser.add_argument("--utterance", action="store_true")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.video, args.start_s, args.end_s, args.warmup, args.whole, args.utterance)))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # dgnode from this checkout
    sys.exit(main())
