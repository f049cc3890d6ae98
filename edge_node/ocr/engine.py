"""The OCR engine behind one small interface.

`OcrEngine` takes an image (a numpy array, grey or BGR) and returns text boxes.
The default, `RapidOcrEngine`, runs the PP-OCR models that ship inside the
`rapidocr` wheel on `onnxruntime`; every model path is given explicitly, so
rapidocr never takes its download path. A site that prefers PaddleOCR with its
own local model files writes a class with the same `read` method and passes it
to `edge_node.ocr.labs.read_files` (see docs/lab-ocr.md).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from shared_cdm.errors import Unavailable

if TYPE_CHECKING:
    import numpy as np

# (task, file in rapidocr's models folder): the models the wheel ships
PACKAGED_MODELS = {
    "Det": "PP-OCRv6_det_small.onnx",
    "Cls": "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
    "Rec": "PP-OCRv6_rec_small.onnx",
}


@dataclass(frozen=True)
class TextBox:
    """One line of text: its quadrilateral (4 x,y points, clockwise from top
    left), the text and the recogniser's confidence (0-1)."""

    quad: tuple[tuple[float, float], ...]
    text: str
    confidence: float

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        xs = [p[0] for p in self.quad]
        ys = [p[1] for p in self.quad]
        return min(xs), min(ys), max(xs), max(ys)


class OcrEngine(Protocol):
    def read(self, image: np.ndarray) -> list[TextBox]:
        """The text boxes found in `image` (grey or BGR uint8)."""
        ...


def packaged_model_paths() -> dict[str, Path]:
    """Where the PP-OCR models are inside the installed rapidocr package."""
    spec = find_spec("rapidocr")
    if spec is None or spec.origin is None:
        raise Unavailable("lab OCR needs the rapidocr package", code="ocr_unavailable")
    folder = Path(spec.origin).parent / "models"
    return {task: folder / name for task, name in PACKAGED_MODELS.items()}


class RapidOcrEngine:
    """PP-OCR (detection, angle classification, recognition) via rapidocr on
    onnxruntime, loaded once on first use and shared by every image."""

    def __init__(self, threads: int | None = None) -> None:
        self._threads = threads
        self._ocr: Any = None
        self._lock = threading.Lock()

    def params(self) -> dict[str, Any]:
        paths = packaged_model_paths()
        missing = [str(p) for p in paths.values() if not p.is_file()]
        if missing:
            raise Unavailable(
                "the OCR models are not installed with rapidocr (nothing is downloaded): "
                + ", ".join(missing),
                code="ocr_models_missing",
            )
        params: dict[str, Any] = {"Global.log_level": "error"}
        for task, path in paths.items():
            params[f"{task}.model_path"] = str(path)
        if self._threads:
            params["EngineConfig.onnxruntime.intra_op_num_threads"] = self._threads
        return params

    def _load(self) -> Any:
        if self._ocr is None:
            with self._lock:
                if self._ocr is None:
                    from rapidocr import RapidOCR

                    logging.getLogger("RapidOCR").setLevel(logging.ERROR)
                    self._ocr = RapidOCR(params=self.params())
        return self._ocr

    def read(self, image: np.ndarray) -> list[TextBox]:
        result = self._load()(image)
        if result.boxes is None or result.txts is None or result.scores is None:
            return []
        return [
            TextBox(tuple((float(x), float(y)) for x, y in quad), str(text), float(score))
            for quad, text, score in zip(result.boxes, result.txts, result.scores, strict=True)
        ]
