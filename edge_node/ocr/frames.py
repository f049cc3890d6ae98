"""Frames cut from a video and read by the OCR engine (burned-in timestamps, labels).

`sample` decodes the video with OpenCV's FFmpeg backend and keeps one frame every
`every` seconds (by the frame's own timestamp, so variable frame rates work);
`read_video` OCRs each kept frame. Frames stay in memory unless the operator asks
for them on local disk (`--keep-frames`): nothing here sends anything anywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from edge_node.ocr.engine import OcrEngine


class VideoError(Exception):
    """The file is not a video OpenCV can decode."""


@dataclass(frozen=True)
class Frame:
    index: int  # position in the stream, from 0
    time_s: float
    image: np.ndarray


def sample(path: Path, every: float) -> Iterator[Frame]:
    """One frame every `every` seconds, starting with the first frame."""
    import cv2

    if every <= 0:
        raise ValueError("--every must be a positive number of seconds")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise VideoError(f"cannot open {path.name} as a video")
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        index, next_t, decoded = 0, 0.0, 0
        while cap.grab():  # grab() skips the colour conversion of frames not kept
            t = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if t <= 0 and index and fps > 0:
                t = index / fps  # some containers report no timestamps
            if t + 1e-6 >= next_t:
                ok, image = cap.retrieve()
                if ok and image is not None:
                    decoded += 1
                    yield Frame(index, round(t, 3), image)
                    next_t = t + every
            index += 1
        if index == 0:
            raise VideoError(f"{path.name} holds no decodable frame")
    finally:
        cap.release()


# Burned-in date and time as video devices print them: 2024-03-05 14:22:10, 2024/3/5 14:22
_DATETIME = re.compile(
    r"(?P<y>(?:19|20)\d\d)[-/.年](?P<mo>[01]?\d)[-/.月](?P<d>[0-3]?\d)日?"
    r"(?:[ T]*(?P<h>[0-2]?\d)[:：](?P<mi>[0-5]\d)(?:[:：](?P<s>[0-5]\d))?)?"
)


def burned_in_datetime(lines: list[str]) -> str | None:
    """The first date (and time) the frame's text shows, ISO-formatted."""
    for line in lines:
        m = _DATETIME.search(line.replace(" ", " "))
        if not m:
            continue
        mo, d = int(m["mo"]), int(m["d"])
        if not (1 <= mo <= 12 and 1 <= d <= 31):
            continue
        out = f"{m['y']}-{mo:02d}-{d:02d}"
        if m["h"] is not None and int(m["h"]) < 24:
            out += f"T{int(m['h']):02d}:{m['mi']}:{m['s'] or '00'}"
        return out
    return None


def read_video(
    path: Path, every: float, engine: OcrEngine, keep_dir: Path | None = None
) -> Iterator[dict[str, Any]]:
    """One record per kept frame: its time, the text boxes and the burned-in date-time."""
    import cv2

    if keep_dir is not None:
        keep_dir.mkdir(parents=True, exist_ok=True)
    for frame in sample(path, every):
        rec: dict[str, Any] = {
            "video": path.name,
            "frame": frame.index,
            "time_s": frame.time_s,
            "text": [],
            "datetime": None,
            "errors": [],
        }
        try:
            boxes = engine.read(frame.image)
        except Exception as exc:  # one frame's failure must not end the video
            rec["errors"].append(f"OCR failed: {type(exc).__name__}")
            yield rec
            continue
        boxes.sort(key=lambda b: (round(b.bbox[1] / 10), b.bbox[0]))
        rec["text"] = [
            {
                "text": b.text,
                "confidence": round(b.confidence, 3),
                "box": [round(v) for v in b.bbox],
            }
            for b in boxes
        ]
        rec["datetime"] = burned_in_datetime([b.text for b in boxes])
        if keep_dir is not None:
            cv2.imwrite(str(keep_dir / f"{path.stem}_{frame.index:06d}.png"), frame.image)
        yield rec
