"""The stamp font's engines share one parse of the font, and embed what pyHanko's own engines embed."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from fontTools.ttLib import TTFont
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader

import signing.pdf as pdf
from node.samples import sample_pdf
from signing.keys import load_pem
from signing.pdf import PdfSigningKey, PdfSignOptions, SignatureRole, sign_pdf
from tests.conftest import require
from tests.signing.fixtures import CaFixture

_PREFIX = re.compile(r"[A-Z]{6}\+")


@pytest.fixture(scope="module")
def key(test_ca: CaFixture) -> PdfSigningKey:
    return PdfSigningKey(load_pem(test_ca.rsa.key_path, test_ca.rsa.cert_path, test_ca.chain_path))


def _factory() -> pdf._StampFontFactory:
    factory = pdf._font()
    # Under CI a missing font fails instead of skipping (scripts/system-deps.sh installs it).
    require(isinstance(factory, pdf._StampFontFactory), "no TrueType stamp font installed")
    assert isinstance(factory, pdf._StampFontFactory)
    require(
        pdf._parsed_font(factory.font_file) is not None,
        "the stamp font is CFF: engines parse it each time, as pyHanko does",
    )
    return factory


def _font_program(data: bytes) -> tuple[str, dict[str, object]]:
    font = TTFont(io.BytesIO(data))
    out = io.StringIO()
    font.saveXML(out, skipTables=["head"])
    head = {k: v for k, v in vars(font["head"]).items() if k not in ("modified", "checkSumAdjustment")}
    return out.getvalue(), head


def _plain(obj: Any, key: str = "") -> Any:
    """An object with references followed, streams decoded, subset tags and font save times left out."""
    if isinstance(obj, generic.IndirectObject):
        obj = obj.get_object()
    if isinstance(obj, generic.StreamObject):
        if key == "/FontFile2":
            return ("font program", _font_program(obj.data))
        return ("stream", {k: _plain(v, k) for k, v in obj.items() if k not in ("/Length", "/Length1")}, obj.data)
    if isinstance(obj, dict):
        return {k: _plain(v, k) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    if isinstance(obj, str):
        return _PREFIX.sub("SUBSET+", obj)
    return obj


def _embedded_fonts(data: bytes) -> list[Any]:
    reader = PdfFileReader(io.BytesIO(data), strict=False)
    last = reader.xrefs.total_revisions - 1
    found = []
    for ref in sorted(reader.xrefs.explicit_refs_in_revision(last), key=lambda r: r.idnum):
        obj = reader.get_object(ref)
        if isinstance(obj, generic.DictionaryObject) and obj.get("/Subtype") == "/Type0":
            found.append(_plain(obj))
    return found


def _sign(key: PdfSigningKey, name: str) -> bytes:
    options = PdfSignOptions(role=SignatureRole.ORGANISATION, organisation_name=name)
    return sign_pdf(sample_pdf("Font", size=3_000), key, options)


@pytest.mark.parametrize("name", ["Sở Tài chính tỉnh Nghệ An", "Ủy ban nhân dân xã Đông Hưng — ĐỒNG THÁP"])
def test_embedded_as_pyhanko_embeds_it(key: PdfSigningKey, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _factory()
    monkeypatch.setattr(pdf, "_SUBSET_PROGRAMS", {})
    shared = _sign(key, name)  # subsets: a private parse
    replayed = _sign(key, name)  # the remembered subset program
    pdf._SUBSET_PROGRAMS.clear()
    with monkeypatch.context() as m:
        m.setattr(pdf, "_parsed_font", lambda path: None)
        own = _sign(key, name)  # each engine parses the font, as pyHanko does
    expected = _embedded_fonts(own)
    assert len(expected) == 1
    assert _embedded_fonts(shared) == expected
    assert _embedded_fonts(replayed) == expected


def test_subsetting_leaves_the_shared_parse_whole(key: PdfSigningKey, monkeypatch: pytest.MonkeyPatch) -> None:
    factory = _factory()
    parsed = pdf._parsed_font(factory.font_file)
    assert parsed is not None
    glyphs = list(parsed.tt.getGlyphOrder())
    monkeypatch.setattr(pdf, "_SUBSET_PROGRAMS", {})
    _sign(key, "Văn phòng Ủy ban nhân dân tỉnh")
    assert parsed.tt.getGlyphOrder() == glyphs
    assert set(parsed.tt["glyf"].keys()) == set(glyphs)


def test_an_engine_is_set_up_as_pyhankos(monkeypatch: pytest.MonkeyPatch) -> None:
    factory = _factory()

    def engine() -> Any:
        writer = IncrementalPdfFileWriter(io.BytesIO(sample_pdf("Engine", size=3_000)))
        made = factory.create_font_engine(writer)
        made.shape("Sở Tài chính — 2026-11-20T09:00:00+07:00")
        return made

    shared = engine()
    with monkeypatch.context() as m:
        m.setattr(pdf, "_parsed_font", lambda path: None)
        own = engine()
    assert shared.tt is pdf._parsed_font(factory.font_file).tt  # type: ignore[union-attr]
    assert own.tt is not shared.tt
    assert set(vars(shared)) - {"_shared"} == set(vars(own)) - {"_shared"}
    different = {"writer", "tt", "hb_font", "_glyph_set", "_font_ref", "subset_prefix", "cidfont_obj", "_shared"}
    for name, value in vars(own).items():
        if name not in different:
            assert vars(shared)[name] == value, name
    assert _plain(shared.cidfont_obj) == _plain(own.cidfont_obj)
    assert _plain(shared.cidfont_obj._font_descriptor) == _plain(own.cidfont_obj._font_descriptor)
    assert type(shared.cidfont_obj) is type(own.cidfont_obj)
