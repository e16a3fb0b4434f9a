"""The invoice PDF prints every name as text (issue 12, item 8): a manager whose roll-up accounts
are named in Greek, Cyrillic, Chinese, Arabic and with an emoji downloads its invoice, and pypdf
reads every name back. The fonts are the pip packages of billing.invoices.fonts, not the system's.

Arabic prints right to left in isolated letter forms and an emoji as its Unicode name in brackets
(billing.invoices.fonts says why); pypdf reads the Arabic back in logical order.
"""

from __future__ import annotations

import re
import time
from io import BytesIO

from django.test import Client
from django.urls import reverse
from pypdf import PdfReader

from accounts.models import Account, Membership, Role, User
from billing.invoices.builder import invoice_party
from billing.invoices.fonts import CHAIN, Face, register, runs
from tests.test_invoice_pages import MARCH, usage

GREEK = "Ελληνική Τηλεφωνία"
CYRILLIC = "Связь Москва"
CHINESE = "北京电信有限公司"
ARABIC = "شركة الاتصالات"
EMOJI = "Rocket Calls 🚀"
NAMES = (GREEK, CYRILLIC, CHINESE, ARABIC, EMOJI)


def _pdf_of_a_manager_with_names(names: tuple[str, ...]) -> tuple[Account, bytes, float]:
    manager = Account.objects.create(
        name="Ωmega Reseller", email="omega@example.com", kind=Account.Kind.MANAGER, managed_account_limit=10
    )
    managed = [
        Account.objects.create(
            name=name,
            email=f"named{n}@example.com",
            kind=Account.Kind.MANAGED,
            manager=manager,
            billing_mode=Account.BillingMode.ROLLUP,
        )
        for n, name in enumerate(names)
    ]
    usage(manager, (manager, "sms.outbound", "3"), *[(account, "voice.outbound", "12.5") for account in managed])
    invoice = invoice_party(account=manager, month=MARCH)
    user = User.objects.create(email="omega-billing@example.com")
    Membership.objects.create(user=user, account=manager, role=Role.BILLING)
    client = Client()
    client.force_login(user)
    started = time.perf_counter()
    response = client.get(reverse("invoice_pdf", args=[manager.public_id, invoice.public_id]))
    seconds = time.perf_counter() - started
    assert response.status_code == 200
    return manager, response.content, seconds


def _text(content: bytes) -> str:
    reader = PdfReader(BytesIO(content))
    return re.sub(r"\s+", " ", "\n".join(page.extract_text() for page in reader.pages))


def _embedded_fonts(content: bytes) -> set[str]:
    reader = PdfReader(BytesIO(content))
    found = set()
    for page in reader.pages:
        for font in page["/Resources"]["/Font"].values():
            found.add(str(font.get_object()["/BaseFont"]))
    return found


def test_every_name_of_the_invoice_prints_as_text_in_its_pdf(db):
    manager, content, seconds = _pdf_of_a_manager_with_names(NAMES)

    printed = _text(content)
    print(f"\nUnicode names PDF: {len(content):,} bytes in {seconds:.2f} s")
    for name in (GREEK, CYRILLIC, CHINESE, ARABIC, "Ωmega Reseller"):
        assert f"{name} Roll-up managed account" in printed or name in printed, (name, printed)
        assert printed.count(name) >= 2, name  # the section heading and its subtotal line
    assert "Rocket Calls [rocket]" in printed  # the emoji, named: no font on PyPI draws it
    assert "\ufffd" not in printed
    # Embedded subsets of the packaged faces (named by their PostScript names), no standard PDF font.
    embedded = {font.split("+")[-1] for font in _embedded_fonts(content)}
    assert {"NotoSans-Regular", "NotoSansArabic-Regular"} <= embedded, embedded
    assert [font for font in embedded if font.startswith("NotoSansSC")], embedded
    assert not [font for font in embedded if not font.startswith("NotoSans")], embedded
    # Subsets only: the CJK font alone is 17 MB.
    assert len(content) < 250_000, len(content)
    assert seconds < 10, seconds


def test_each_character_is_set_in_a_face_that_has_its_glyph(db):
    """No run is left to a face without the glyph (which would print a box)."""
    for name in NAMES:
        for face, chunk in runs(name):
            for char in chunk:
                assert face in CHAIN
                assert char == " " or ord(char) in _glyphs(face), (name, face.key, char)


def _glyphs(face: Face) -> set[int]:
    return set(register(face, False).face.charToGlyph)
