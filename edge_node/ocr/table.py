"""Rebuilding a lab table from OCR text boxes.

Rows come from geometry: boxes are chained left to right into text lines,
each box joining the line whose slope, carried to the box, passes through its
centre (so a page tilted or photographed at a few degrees still gives straight
rows). The header row is the one whose cells are column titles in either
language (any order; two titles read as one box are split); each later box goes
to the column whose title it lies under (or, under none, the nearest title to
its left). Lines above the header (hospital,
patient, dates) never become items.
"""

from __future__ import annotations

import math
import re
import statistics
import unicodedata
from dataclasses import dataclass, field

from edge_node.ocr.engine import TextBox

# column kind -> titles (compared folded: NFKC, lower case, no spaces, colons or dots)
COLUMN_TITLES: dict[str, tuple[str, ...]] = {
    "item": ("项目名称", "检验项目", "检测项目", "项目", "名称", "检验名称", "中文名称",
             "item", "items", "test", "testname", "analyte", "examination"),
    "result": ("结果", "检验结果", "检测结果", "测定值", "结果值", "result", "results", "value"),
    "unit": ("单位", "unit", "units"),
    "reference": ("参考范围", "参考值", "参考区间", "正常参考值", "参考值范围", "reference",
                  "referencerange", "refrange", "normalrange", "range", "referenceinterval"),
    "flag": ("提示", "标志", "异常提示", "flag", "flags", "↑↓", "h/l", "hl"),
    "no": ("序号", "no", "#", "编号"),
    "code": ("代号", "英文缩写", "缩写", "代码", "code", "abbr", "abbreviation"),
}  # fmt: skip
_TITLE_KIND = {title: kind for kind, titles in COLUMN_TITLES.items() for title in titles}
_TITLES_LONGEST_FIRST = sorted(_TITLE_KIND, key=len, reverse=True)


def fold_title(text: str) -> str:
    return re.sub(r"[\s:：.。()（）]", "", unicodedata.normalize("NFKC", text).casefold())


@dataclass
class Cell:
    """A box (or part of one) in page coordinates turned level."""

    text: str
    confidence: float
    x0: float
    x1: float
    cy: float
    height: float
    angle: float  # the box's own slope, radians


@dataclass
class Line:
    cells: list[Cell] = field(default_factory=list)

    @property
    def cy(self) -> float:
        return statistics.fmean(c.cy for c in self.cells)

    def text(self) -> str:
        return " ".join(c.text for c in sorted(self.cells, key=lambda c: c.x0))


@dataclass(frozen=True)
class Column:
    kind: str
    x0: float
    x1: float


@dataclass(frozen=True)
class TableRow:
    cells: dict[str, list[Cell]]

    def text(self, kind: str, joiner: str = " ") -> str:
        parts = [c.text for c in sorted(self.cells.get(kind, []), key=lambda c: c.x0)]
        return joiner.join(parts).strip()

    def confidence(self) -> float:
        scores = [c.confidence for cells in self.cells.values() for c in cells]
        return min(scores) if scores else 0.0


def _angle(box: TextBox) -> float:
    (x0, y0), (x1, y1) = box.quad[0], box.quad[1]
    return math.atan2(y1 - y0, x1 - x0) if x1 > x0 else 0.0


def page_angle(boxes: list[TextBox]) -> float:
    """The page's tilt: the median slope of the longer boxes (short ones are noisy)."""
    slopes = []
    for box in boxes:
        x0, y0, x1, y1 = box.bbox
        if x1 - x0 > 3 * max(y1 - y0, 1.0):
            slopes.append(_angle(box))
    return statistics.median(slopes) if slopes else 0.0


def level_cells(boxes: list[TextBox]) -> list[Cell]:
    """Boxes in coordinates rotated so the page's text runs level."""
    theta = page_angle(boxes)
    cos, sin = math.cos(theta), math.sin(theta)
    cells = []
    for box in boxes:
        if not box.text.strip():
            continue
        xs = [x * cos + y * sin for x, y in box.quad]
        ys = [-x * sin + y * cos for x, y in box.quad]
        height = max(ys) - min(ys)
        if len(box.quad) == 4:  # the quad's own height, not its tilted bounding box
            height = max(1.0, (abs(ys[3] - ys[0]) + abs(ys[2] - ys[1])) / 2)
        cells.append(
            Cell(box.text, box.confidence, min(xs), max(xs), sum(ys) / len(ys), height,
                 _angle(box) - theta)
        )  # fmt: skip
    return cells


def group_lines(cells: list[Cell]) -> list[Line]:
    """Chain cells left to right into text lines, top to bottom."""
    lines: list[Line] = []
    for cell in sorted(cells, key=lambda c: c.x0):
        best, best_gap = None, math.inf
        for line in lines:
            last = max(line.cells, key=lambda c: c.x1)
            if cell.x0 < last.x1 - 0.3 * (last.x1 - last.x0):
                continue  # overlaps the line's last box: another line
            slope = _line_slope(line)
            predicted = last.cy + math.tan(slope) * (
                (cell.x0 + cell.x1) / 2 - (last.x0 + last.x1) / 2
            )
            gap = abs(predicted - cell.cy)
            if gap < 0.5 * max(cell.height, last.height) and gap < best_gap:
                best, best_gap = line, gap
        if best is None:
            lines.append(Line([cell]))
        else:
            best.cells.append(cell)
    return sorted(lines, key=lambda line: line.cy)


def _line_slope(line: Line) -> float:
    long = [c.angle for c in line.cells if c.x1 - c.x0 > 3 * c.height]
    return statistics.median(long) if long else 0.0


def _split_titles(text: str) -> list[str] | None:
    """`参考范围单位` -> [`参考范围`, `单位`]: a box that is titles read together."""
    folded = fold_title(text)
    if folded in _TITLE_KIND:
        return [folded]
    parts: list[str] = []
    rest = folded
    while rest:
        for title in _TITLES_LONGEST_FIRST:
            if rest.startswith(title):
                parts.append(title)
                rest = rest[len(title) :]
                break
        else:  # a title cut short at the page edge or by the recogniser: `Reference rang`
            cut = [t for t in _TITLES_LONGEST_FIRST if len(rest) >= 4 and t.startswith(rest)]
            if not cut:
                return None
            parts.append(cut[0])
            rest = ""
    return parts


def header_columns(line: Line) -> list[Column]:
    """The columns a header line names, left to right (empty if it is not one)."""
    columns = []
    for cell in sorted(line.cells, key=lambda c: c.x0):
        titles = _split_titles(cell.text)
        if not titles:
            continue
        total = sum(len(t) for t in titles)
        start = cell.x0
        for title in titles:  # share the box's width by characters
            width = (cell.x1 - cell.x0) * len(title) / total
            columns.append(Column(_TITLE_KIND[title], start, start + width))
            start += width
    kinds = [c.kind for c in columns]
    if "item" in kinds and "result" in kinds and len(set(kinds)) == len(kinds):
        return columns
    return []


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def _column_of(x0: float, x1: float, columns: list[Column], slack: float) -> tuple[str, int]:
    """The column a stretch of a line belongs to, and how many titles it lies
    under: the title it overlaps most; under none, the nearest title starting to
    its left (tables are mostly left-aligned), else the first column."""
    overlaps = [(_overlap(x0, x1, c.x0 - slack, c.x1 + slack), c.kind) for c in columns]
    under = sum(1 for amount, _ in overlaps if amount > 0)
    if under:
        return max(overlaps)[1], under
    left = [c for c in columns if c.x0 <= x0 + slack]
    return (max(left, key=lambda c: c.x0) if left else columns[0]).kind, 0


def _assign(cell: Cell, columns: list[Column]) -> list[tuple[str, Cell]]:
    """The column(s) of a cell; a box read across two column titles
    (`14.91 ug/L`) is split at its spaces, each word going where its estimated
    position falls."""
    slack = 0.3 * cell.height
    kind, under = _column_of(cell.x0, cell.x1, columns, slack)
    words = cell.text.split()
    if under < 2 or len(words) < 2:
        return [(kind, cell)]
    width = max(cell.x1 - cell.x0, 1.0)
    out: list[tuple[str, Cell]] = []
    position = 0
    for word in words:
        start = cell.text.index(word, position)
        position = start + len(word)
        x0 = cell.x0 + width * start / len(cell.text)
        x1 = cell.x0 + width * position / len(cell.text)
        kind = _column_of(x0, x1, columns, 0.0)[0]
        if out and out[-1][0] == kind:  # words of one column stay one cell
            prev = out[-1][1]
            out[-1] = (kind, Cell(f"{prev.text} {word}", prev.confidence, prev.x0, x1,
                                  prev.cy, prev.height, prev.angle))  # fmt: skip
        else:
            out.append(
                (kind, Cell(word, cell.confidence, x0, x1, cell.cy, cell.height, cell.angle))
            )
    return out


def reconstruct(boxes: list[TextBox]) -> tuple[list[Column], list[TableRow]]:
    """The header's columns and the rows under it; no columns when no header
    line is found."""
    lines = group_lines(level_cells(boxes))
    found = next(
        ((i, cols) for i, line in enumerate(lines) if (cols := header_columns(line))), None
    )
    if found is None:
        return [], []
    index, columns = found
    rows = []
    for line in lines[index + 1 :]:
        cells: dict[str, list[Cell]] = {}
        for cell in line.cells:
            for kind, part in _assign(cell, columns):
                cells.setdefault(kind, []).append(part)
        rows.append(TableRow(cells))
    return columns, rows
