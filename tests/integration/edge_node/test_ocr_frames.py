"""`oncofed-edge frames`: a video cut into frames, burned-in text read by the real
PP-OCR models, in a separate process as a site would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_node.ocr.frames import burned_in_datetime, sample

pytestmark = pytest.mark.slow


def _video(path: Path, fourcc: str, fps: int, seconds: int) -> None:
    import cv2

    code = cv2.VideoWriter_fourcc(*fourcc)  # type: ignore[attr-defined]
    writer = cv2.VideoWriter(str(path), code, fps, (640, 360))
    assert writer.isOpened()
    for i in range(fps * seconds):
        img = np.full((360, 640, 3), 35, np.uint8)
        cv2.circle(img, (320, 190), 50 + i, (80, 110, 190), -1)  # moving scene
        stamp = f"2024-03-05 14:22:{10 + i // fps:02d}"
        cv2.putText(img, stamp, (20, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
        cv2.putText(
            img, "ENDOSCOPY ROOM 2", (20, 340), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2
        )
        writer.write(img)
    writer.release()


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "edge_node.cli", "frames", *args]
    env = dict(os.environ)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, check=False)


@pytest.mark.parametrize(("name", "fourcc"), [("clip.avi", "MJPG"), ("clip.mp4", "mp4v")])
def test_frames_reads_burned_in_timestamps(tmp_path: Path, name: str, fourcc: str) -> None:
    video = tmp_path / name
    _video(video, fourcc, fps=5, seconds=4)
    out = tmp_path / "frames.jsonl"
    keep = tmp_path / "kept"

    done = _run(str(video), "--every", "1.5", "--out", str(out), "--keep-frames", str(keep))

    assert done.returncode == 0, done.stderr
    recs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    # 20 frames at 5 fps, one kept every 1.5 s: t = 0, 1.6, 3.2 (the first frame at or after)
    assert [r["frame"] for r in recs] == [0, 8, 16]
    assert [r["time_s"] for r in recs] == pytest.approx([0.0, 1.6, 3.2])
    assert [r["datetime"] for r in recs] == [
        "2024-03-05T14:22:10",
        "2024-03-05T14:22:11",
        "2024-03-05T14:22:13",
    ]
    assert all("ENDOSCOPY ROOM 2" in [t["text"] for t in r["text"]] for r in recs)
    assert sorted(p.name for p in keep.iterdir()) == [
        "clip_000000.png",
        "clip_000008.png",
        "clip_000016.png",
    ]
    assert "3 frames read" in done.stderr


def test_frames_refuses_what_is_not_a_video(tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_bytes(b"this is not a video at all" * 40)
    done = _run(str(fake))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: ")
    missing = _run(str(tmp_path / "absent.avi"))
    assert missing.returncode == 2 and "no video file" in missing.stderr


def test_sample_keeps_the_first_frame_at_or_after_each_step(tmp_path: Path) -> None:
    video = tmp_path / "v.avi"
    _video(video, "MJPG", fps=10, seconds=2)
    assert [f.index for f in sample(video, 0.5)] == [0, 5, 10, 15]
    assert len(list(sample(video, 0.05))) == 20  # a step shorter than a frame keeps all
    with pytest.raises(ValueError, match="positive"):
        list(sample(video, 0))


def test_burned_in_datetime_shapes() -> None:
    assert burned_in_datetime(["ENDO", "2023/7/9 08:05"]) == "2023-07-09T08:05:00"
    assert burned_in_datetime(["2023年7月9日"]) == "2023-07-09"
    assert burned_in_datetime(["2023-13-40 10:00"]) is None
    assert burned_in_datetime(["no date here"]) is None
