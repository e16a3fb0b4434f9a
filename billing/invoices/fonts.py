"""Unicode fonts for the invoice PDF (billing.invoices.pdf), so that every name prints as text.

The fonts come from pip packages that the project declares (pyproject.toml), never from the
system or the repository: Noto Sans (Latin, Greek, Cyrillic: fontpkg-noto-sans), Noto Sans
Arabic (fontpkg-noto-sans-arabic) and Noto Sans SC, TC, JP and KR (justmytype-intl-cjk). They
are variable fonts; reportlab draws a TrueType font's default outlines, which for Noto Sans SC
is its Thin weight, so each face is instanced at its weight (400 regular, 700 bold) with
HarfBuzz (uharfbuzz) once per process, in memory, when a run first needs it (about a second for
each weight of a CJK face). reportlab embeds only the glyphs it uses.

reportlab has no per-glyph fallback: `runs` splits a text into runs of the first face of
`CHAIN` that has every glyph of the run, and `markup` writes them as `<font name=...>` runs for a
Paragraph. What prints, honestly:
- Latin, Greek, Cyrillic, Chinese (simplified and traditional), Japanese, Korean: as text.
- Arabic: as text, in right-to-left order, but in isolated letter forms (not joined): joining
  needs reportlab's shaping, whose glyphs pypdf (and a reader's copy and paste) cannot read back
  as the letters, and its bidi needs rlbidi, which PyPI does not offer here. So a right-to-left
  run is written in visual order; pypdf reads it back in logical order.
- Emoji: no package on PyPI ships an emoji font reportlab can draw (OpenMoji's fonts are COLR
  layers over empty base glyphs; the monochrome Noto Emoji is not packaged), so a character no
  face has prints as its Unicode name in brackets, `[rocket]`, never as a box.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from io import BytesIO
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import uharfbuzz  # type: ignore[import-untyped]  # no type information is published for it
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas


@dataclass(frozen=True)
class Face:
    key: str
    path: Path
    rtl: bool = False


def _package_file(package: str, *parts: str) -> Path:
    """A file that an installed font package ships (the packages are data only: no import)."""
    return Path(str(files(package))).joinpath(*parts)


_CJK = ("fonts", "ofl")
CHAIN: tuple[Face, ...] = (
    Face("Sans", _package_file("fontpkg_noto_sans", "files", "NotoSans[wdth,wght].ttf")),
    Face("Arabic", _package_file("fontpkg_noto_sans_arabic", "files", "NotoSansArabic[wdth,wght].ttf"), rtl=True),
    Face("SC", _package_file("justmytype_intl_cjk", *_CJK, "notosanssc", "NotoSansSC[wght].ttf")),
    Face("TC", _package_file("justmytype_intl_cjk", *_CJK, "notosanstc", "NotoSansTC[wght].ttf")),
    Face("JP", _package_file("justmytype_intl_cjk", *_CJK, "notosansjp", "NotoSansJP[wght].ttf")),
    Face("KR", _package_file("justmytype_intl_cjk", *_CJK, "notosanskr", "NotoSansKR[wght].ttf")),
)
BASE = CHAIN[0]
SANS = "MC-Sans"  # the invoice's own font: every style and table of the PDF is set in it
SANS_BOLD = "MC-Sans-Bold"

# Joiners, variation selectors and skin-tone modifiers: part of the character before them.
_SILENT = {0x200D, 0xFE0E, 0xFE0F, *range(0x1F3FB, 0x1F400)}


def font_name(face: Face, bold: bool) -> str:
    return f"MC-{face.key}-Bold" if bold else f"MC-{face.key}"


@cache
def register(face: Face, bold: bool) -> TTFont:
    """The face at weight 700 (bold) or 400, instanced from its variable font, registered with
    reportlab under font_name(face, bold)."""
    # A face of its own: HarfBuzz ignores the pinned weight when a face is instanced a second time.
    source = _open(face)
    plan = uharfbuzz.SubsetInput()
    plan.sets(uharfbuzz.SubsetInputSets.UNICODE).invert()  # every character the font maps
    # Unshaped text needs no layout tables; instancing them is most of the work.
    for tag in ("GSUB", "GPOS", "GDEF", "HVAR", "MVAR", "STAT"):
        plan.sets(uharfbuzz.SubsetInputSets.DROP_TABLE_TAG).add(int.from_bytes(tag.encode(), "big"))
    plan.pin_all_axes_to_default(source)
    plan.pin_axis_location(source, "wght", 700 if bold else 400)
    static = uharfbuzz.subset(source, plan)
    if static is None:
        raise RuntimeError(f"{face.path}: HarfBuzz could not instance the font")
    font = TTFont(font_name(face, bold), BytesIO(bytes(static.blob.data)))
    pdfmetrics.registerFont(font)
    return font


def register_base() -> None:
    """The invoice's own regular and bold faces (SANS, SANS_BOLD), before a PDF is built."""
    register(BASE, False)
    register(BASE, True)


@cache
def _source(face: Face) -> Any:  # a uharfbuzz.Face, for its cmap
    return _open(face)


def _open(face: Face) -> Any:  # a uharfbuzz.Face
    if not face.path.is_file():
        raise FileNotFoundError(f"{face.path}: the font package is not installed (pip install -e .)")
    return uharfbuzz.Face(uharfbuzz.Blob.from_file_path(str(face.path)))


@cache
def _characters(face: Face) -> frozenset[int]:
    """The code points the face maps, from its cmap: a face is instanced only once a run uses it."""
    return frozenset(_source(face).unicodes)


def _has(face: Face, char: str) -> bool:
    return ord(char) in _characters(face)


def _face_for(char: str, current: Face) -> Face | None:
    if _has(current, char):
        return current
    return next((face for face in CHAIN if _has(face, char)), None)


def _fallback(char: str) -> str:
    name = unicodedata.name(char, "")
    return f"[{name.lower()}]" if name else "?"


def runs(text: str) -> Iterator[tuple[Face, str]]:
    """`text` as runs of (face, characters), each face the first of CHAIN that has the glyphs
    (the run's face is kept for a space or a digit it has, so runs split only where they must);
    a right-to-left run in visual order; a character no face has as its bracketed name."""
    current, chunk = BASE, ""
    for char in text:
        if ord(char) in _SILENT and not _has(current, char):
            continue
        face = _face_for(char, current)
        piece = char
        if face is None:
            face, piece = BASE, _fallback(char)
        if face != current and chunk:
            yield current, _visual(current, chunk)
            chunk = ""
        current, chunk = face, chunk + piece
    if chunk:
        yield current, _visual(current, chunk)


def _visual(face: Face, chunk: str) -> str:
    if not face.rtl:
        return chunk
    # Spaces around a right-to-left run stay where they are; the run reads from the right.
    core = chunk.strip(" ")
    lead = chunk[: len(chunk) - len(chunk.lstrip(" "))]
    trail = chunk[len(chunk.rstrip(" ")) :]
    return lead + core[::-1] + trail


def markup(text: str, *, bold: bool = False) -> str:
    """`text`, escaped, as Paragraph markup in a style set in SANS (or SANS_BOLD): the runs that
    need another face in a <font name=...> of their own."""
    out = []
    for face, chunk in runs(text):
        if face == BASE:
            out.append(escape(chunk))
        else:
            register(face, bold)
            out.append(f'<font name="{font_name(face, bold)}">{escape(chunk)}</font>')
    return "".join(out)


def draw_string(canvas: Canvas, x: float, y: float, text: str, size: float) -> None:
    """`text` drawn on `canvas` from (x, y) in its runs' faces (the page footer)."""
    for face, chunk in runs(text):
        name = register(face, False).fontName
        canvas.setFont(name, size)
        canvas.drawString(x, y, chunk)
        x += pdfmetrics.stringWidth(chunk, name, size)
