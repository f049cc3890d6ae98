"""Shortcuts the per-round class tests share: one report kind's fields, PET-CT lesions."""

from __future__ import annotations

from typing import Any

from edge_node.structure.pipeline import extract
from edge_node.structure.text import detect_lang


def path_fields(text: str) -> dict[str, Any]:
    return extract("pathology", text, detect_lang(text)).fields


def dis_fields(text: str) -> dict[str, Any]:
    return extract("discharge", text, detect_lang(text)).fields


def pet_lesions(text: str, lang: str = "en") -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = extract("petct", text, lang).fields["lesions"]
    return out


def sites(lesions: list[dict[str, Any]]) -> list[str]:
    return [les["site"] for les in lesions]
