"""Synthetic OCR boxes: a lab table laid out like a sheet, optionally tilted."""

from __future__ import annotations

import math
import random

from edge_node.ocr.engine import TextBox

CHAR_WIDTH = 14.0
HEIGHT = 26.0


def box(text: str, x: float, y: float, turn: float = 0.0, confidence: float = 0.99) -> TextBox:
    """The box of `text` with its top-left corner at (x, y), the page turned by
    `turn` degrees about the origin."""
    width = CHAR_WIDTH * max(len(text), 1)
    corners = ((x, y), (x + width, y), (x + width, y + HEIGHT), (x, y + HEIGHT))
    theta = math.radians(turn)
    cos, sin = math.cos(theta), math.sin(theta)
    quad = tuple((px * cos - py * sin, px * sin + py * cos) for px, py in corners)
    return TextBox(quad, text, confidence)


def table_boxes(
    header: list[tuple[str, str]],
    rows: list[dict[str, str]],
    *,
    turn: float = 0.0,
    preamble: tuple[str, ...] = (
        "东江市第一人民医院检验报告单",
        "姓名：王伟 性别：男 年龄：61岁 住院号：123456",
    ),
    seed: int = 0,
) -> list[TextBox]:
    """Boxes for a sheet: preamble lines, the header (kind, title) left to right,
    then one line per row (cells by kind); returned in a shuffled order, as an
    engine may."""
    boxes = [box(line, 40, 40 + 45 * i, turn) for i, line in enumerate(preamble)]
    y = 60 + 45 * len(preamble)
    x_of, x = {}, 40.0
    widths = {"item": 300, "result": 140, "unit": 120, "reference": 240, "flag": 80, "no": 70,
              "code": 110}  # fmt: skip
    for kind, title in header:
        x_of[kind] = x
        boxes.append(box(title, x, y, turn))
        x += widths[kind]
    for row in rows:
        y += 48
        boxes.extend(box(row[kind], x_of[kind], y, turn) for kind, _ in header if row.get(kind))
    boxes.append(box("检验者：张敏 审核者：李强", 40, y + 300, turn))
    random.Random(seed).shuffle(boxes)
    return boxes
