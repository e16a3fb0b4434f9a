"""The one check every name the portal stores passes (business names, API key names), from its forms
and its API alike. A name goes into page titles, e-mail subjects, CSV cells and PDF headings: a
line break there splits an e-mail header (the invitation e-mail then fails), a bidi override makes
"Invoice<U+202E>fdp.exe" read as "Invoiceexe.pdf", and a name of zero-width characters looks empty."""

from __future__ import annotations

import unicodedata

from django.core.exceptions import ValidationError

CONTROL_MESSAGE = "Names cannot contain line breaks, tabs or other control characters."
BIDI_MESSAGE = "Names cannot contain bidirectional override or isolate characters (U+202A to U+202E, U+2066 to U+2069)."
BLANK_MESSAGE = "Give a name with at least one visible character."

# Embeddings and overrides (LRE, RLE, PDF, LRO, RLO) and isolates (LRI, RLI, FSI, PDI). The marks
# LRM, RLM and ALM stay allowed: right-to-left names need them and they reorder nothing around them.
BIDI_CONTROLS = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))
# Line and paragraph separators break lines like CR/LF do, though Unicode does not call them controls.
LINE_SEPARATORS = frozenset("\u2028\u2029")
# Letters that render as nothing (the Hangul fillers, often used for "blank" names) and the blank
# Braille pattern: allowed inside a name, but not all of it.
BLANK_LOOKING = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def _invisible(char: str) -> bool:
    """Whitespace, a format character (zero-width space and joiners, word joiner, BOM, soft hyphen,
    bidi marks: Unicode category Cf), or a character that renders as nothing."""
    return char.isspace() or unicodedata.category(char) == "Cf" or char in BLANK_LOOKING


def validate_name(value: str) -> None:
    """Refuses control characters (C0, DEL, C1; CR/LF and tabs included) and line separators, bidi
    embedding, override and isolate characters, and a name with no visible character. Zero-width
    joiners and the like stay allowed inside a visible name (emoji sequences, Indic scripts)."""
    if any(unicodedata.category(char) == "Cc" or char in LINE_SEPARATORS for char in value):
        raise ValidationError(CONTROL_MESSAGE, code="name_control")
    if any(char in BIDI_CONTROLS for char in value):
        raise ValidationError(BIDI_MESSAGE, code="name_bidi")
    if value and all(_invisible(char) for char in value):
        raise ValidationError(BLANK_MESSAGE, code="name_blank")
