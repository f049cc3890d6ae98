"""The OCR engine runs from model files installed with rapidocr: nothing is fetched."""

from __future__ import annotations

import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

from edge_node.ocr.engine import PACKAGED_MODELS, RapidOcrEngine, packaged_model_paths


def test_model_files_are_inside_the_installed_package() -> None:
    spec = find_spec("rapidocr")
    assert spec is not None and spec.origin is not None
    package = Path(spec.origin).parent.resolve()
    paths = packaged_model_paths()
    assert set(paths) == set(PACKAGED_MODELS) == {"Det", "Cls", "Rec"}
    for path in paths.values():
        assert path.is_file() and path.stat().st_size > 100_000, path
        assert path.resolve().is_relative_to(package), path


def test_engine_names_every_model_path_so_rapidocr_never_resolves_a_download() -> None:
    params = RapidOcrEngine().params()
    for task, path in packaged_model_paths().items():
        assert params[f"{task}.model_path"] == str(path)


def test_engine_loads_and_reads_without_fetching(monkeypatch: pytest.MonkeyPatch) -> None:
    from rapidocr.utils import download_file

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the OCR engine tried to download a file")

    monkeypatch.setattr(download_file.DownloadFile, "run", classmethod(refuse))
    import cv2

    page = np.full((120, 420), 250, dtype=np.uint8)
    cv2.putText(page, "CEA 12.5", (20, 75), cv2.FONT_HERSHEY_SIMPLEX, 1.4, 10, 3)
    boxes = RapidOcrEngine(threads=1).read(page)
    assert "".join(b.text for b in boxes).replace(" ", "") == "CEA12.5"
    assert all(0.0 < b.confidence <= 1.0 and len(b.quad) == 4 for b in boxes)


def test_cli_module_does_not_load_the_ocr_stack() -> None:
    code = (
        "import sys, edge_node.ocr.cli\n"
        "stack = ('rapidocr', 'onnxruntime', 'cv2', 'pypdfium2')\n"
        "print(','.join(m for m in stack if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
