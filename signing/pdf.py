"""PAdES signatures on PDF documents (NĐ 30/2020/NĐ-CP), with pyHanko.

Three roles, as on paper:

* ``signer`` — the competent person: a visible image of the handwritten signature (last page).
* ``organisation`` — the organisation's seal: the red seal image overlapping the left third of the
  signer's image, with the organisation name and the signing time (ISO 8601, +07:00).
* ``copy`` — an electronic copy (bản sao điện tử): top right of page 1, no image, the copy details in
  Times New Roman 10 (Liberation Serif, metrically identical, where Times is not installed).

Levels: B-B by default, B-T with a timestamper, B-LT when a trust store is given to embed revocation data.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import itertools
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from PIL import Image
from pyhanko.pdf_utils import generic, layout
from pyhanko.pdf_utils.content import PdfContent
from pyhanko.pdf_utils.decode_limits import DecodePurpose
from pyhanko.pdf_utils.font import opentype
from pyhanko.pdf_utils.font.api import FontEngine, FontEngineFactory
from pyhanko.pdf_utils.font.basic import SimpleFontEngineFactory
from pyhanko.pdf_utils.font.opentype import CIDFontType2, GlyphAccumulator, GlyphAccumulatorFactory
from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.sign import fields, signers
from pyhanko.sign.fields import SigFieldSpec
from pyhanko.sign.general import SigningError
from pyhanko.sign.signers.pdf_signer import PdfSigner
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko.sign.validation import async_validate_pdf_signature, generic_cms
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.errors import NoDSSFoundError, SignatureValidationError
from pyhanko.sign.validation.status import PdfSignatureStatus, TimestampSignatureStatus
from pyhanko.stamp import TextStampStyle
from pyhanko_certvalidator import ValidationContext

from schemas import VIETNAM_TIME
from signing._private import pdf_changes, pdf_levels, pdf_limits, pdf_paths, pyhanko_speedups
from signing._private.images import handwriting_png, image_xobject, seal_png
from signing._private.pdf_limits import PdfLimits
from signing._private.pyhanko_signer import pyhanko_signer
from signing.errors import SignError, TimestampError
from signing.keys import SigningKey
from signing.report import (
    CertificateInfo,
    Indication,
    PdfRevision,
    SignatureReport,
    SubIndication,
    TimestampInfo,
    ValidationTimeSource,
    VerificationReport,
)
from signing.timestamps import subject_name
from signing.trust import TrustStore

# Bulk hex reading and memoised name preparation: the same results, a fraction of the verification time.
pyhanko_speedups.install()
# A signer's passed path validation reused briefly, as for envelopes (see signing._private.pathcache).
pdf_paths.install()

logger = logging.getLogger(__name__)
Box = tuple[float, float, float, float]

# Where the visible signatures go by default (PDF points, origin bottom left, A4 is 595 × 842).
SIGNER_BOX: Box = (330, 110, 510, 180)
SEAL_SIZE = 100.0
# The signer stamp has no text; a standard font, because an embedded subset of zero glyphs trips pyHanko.
_NO_TEXT = TextBoxStyle(font=SimpleFontEngineFactory("Helvetica", 0.5), font_size=1)
COPY_BOX: Box = (375, 772, 575, 826)  # on A4, for a short name: see copy_box
_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/msttcorefonts/Times_New_Roman.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
)


class SignatureRole(StrEnum):
    SIGNER = "signer"  # người có thẩm quyền ký
    ORGANISATION = "organisation"  # chữ ký số của cơ quan, tổ chức (con dấu)
    COPY = "copy"  # bản sao điện tử


SEAL_TEXT_WIDTH = 160.0
SEAL_TEXT_HEIGHT = 26


def seal_box(signer_box: Box = SIGNER_BOX, size: float = SEAL_SIZE) -> Box:
    """The seal stamp's box: the seal image at its top centre, organisation name and time beneath.

    The image's right part covers the left third of the signer's image, and is vertically centred on it.
    """
    x0, y0, x1, y1 = signer_box
    seal_right = x0 + (x1 - x0) / 3
    seal_top = (y0 + y1) / 2 + size / 2
    width = max(size, SEAL_TEXT_WIDTH)
    left = seal_right - (width + size) / 2
    return (left, seal_top - size - SEAL_TEXT_HEIGHT, left + width, seal_top)


@functools.cache
def _font_path() -> str | None:
    return next((p for p in _FONT_CANDIDATES if Path(p).is_file()), None)


# Every letter of Vietnamese, upper and lower case, plus ASCII and common punctuation.
_VIETNAMESE = "aăâbcdđeêghiklmnoôơpqrstuưvxyzfjwàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵ"
_STAMP_CHARACTERS = "".join(chr(c) for c in range(0x20, 0x7F)) + _VIETNAMESE + _VIETNAMESE.upper() + "—–…“”‘’°·"


@functools.cache
def _font() -> FontEngineFactory:
    """The stamp font: a Vietnamese subset of Times New Roman (or Liberation Serif), made once per process.

    Embedding subsets the font again for each signature; starting from ~300 glyphs instead of ~2,500
    makes that cheap.
    """
    path = _font_path()
    if path is None:  # ASCII-only fallback; see docs: install fonts-liberation2 for Vietnamese text
        return SimpleFontEngineFactory("Times-Roman", 0.5)
    from fontTools import subset
    from fontTools.ttLib import TTFont
    from fontTools.ttLib.scaleUpem import scale_upem

    logging.getLogger("fontTools.subset").setLevel(logging.ERROR)
    digest = hashlib.sha256(Path(path).read_bytes() + _STAMP_CHARACTERS.encode()).hexdigest()[:16]
    cached = Path(tempfile.gettempdir()) / "lienthong-fonts" / f"stamp-{digest}.ttf"
    if not cached.is_file():
        font = TTFont(path)
        options = subset.Options()
        options.layout_features = []
        options.hinting = False
        subsetter = subset.Subsetter(options)
        subsetter.populate(text=_STAMP_CHARACTERS)
        subsetter.subset(font)
        # pyHanko writes /W in font units as if there were 1000 per em; Times/Liberation have 2048.
        scale_upem(font, 1000)
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.tmp")
        font.save(str(partial))
        partial.replace(cached)
    return _StampFontFactory(str(cached))


class _StampFontFactory(GlyphAccumulatorFactory):
    """``GlyphAccumulatorFactory``, whose engines share one parse of the font and reuse the subset font
    program of an earlier stamp.

    pyHanko parses the font file (fontTools: outlines, metrics, glyph names from the cmap; HarfBuzz: the
    face) for every engine, that is for every signature, then subsets it and serialises the subset
    (~6 ms), though the stamp text of an organisation draws from the same few dozen glyphs each time.
    The parse is done once per font file (:func:`_parsed_font`) and only read afterwards; an engine
    that has to subset gets a private parse first (subsetting rewrites the font in place). The subset
    program depends only on the font file and the glyphs used, so it is kept per glyph set (compressed,
    as embedded) and written again as is. Only the TrueType case (CIDFontType2) is shared and cached: a
    CFF program carries the random subset tag in its name. The one difference from a fresh subset is the
    font's ``head.modified`` time, which fontTools sets when it saves.
    """

    def create_font_engine(self, writer: Any, obj_stream: Any = None) -> GlyphAccumulator:
        # as GlyphAccumulatorFactory does, but from bytes read once (it opens the file for every engine)
        if obj_stream is None and writer.stream_xrefs and self.create_objstream_if_needed:
            obj_stream = writer.prepare_object_stream()
        return _StampFont(
            self.font_file,
            _parsed_font(self.font_file),
            writer=writer,
            font_handle=io.BytesIO(_font_bytes(self.font_file)),
            font_size=self.font_size,
            ot_script_tag=self.ot_script_tag,
            ot_language_tag=self.ot_language_tag,
            writing_direction=self.writing_direction,
            bcp47_lang_code=self.bcp47_lang_code,
            obj_stream=obj_stream,
        )


@functools.cache
def _font_bytes(path: str) -> bytes:
    return Path(path).read_bytes()  # the stamp subset, named by its content's digest: never changes


@dataclass(frozen=True)
class _ParsedFont:
    """A TrueType font parsed once, as ``GlyphAccumulator`` parses it, and only read from then on."""

    tt: Any  # fontTools TTFont, every table loaded
    hb_font: Any  # uharfbuzz Font
    ps_name: str
    glyph_set: Any
    units_per_em: int


@functools.cache
def _parsed_font(path: str) -> _ParsedFont | None:
    """The shared parse of the stamp font; None for a CFF font (each engine parses it, as pyHanko does)."""
    import uharfbuzz  # type: ignore[import-untyped]
    from fontTools.ttLib import TTFont

    data = _font_bytes(path)
    tt = TTFont(io.BytesIO(data))
    if "CFF " in tt:
        return None
    # fontTools loads tables on first use, in place; engines in several threads read this one
    for tag in list(tt.keys()):
        _ = tt[tag]
    tt.getGlyphOrder()
    return _ParsedFont(
        tt=tt,
        hb_font=uharfbuzz.Font(uharfbuzz.Face(data)),
        ps_name=opentype._read_ps_name(tt),
        glyph_set=tt.getGlyphSet(preferCFF=True),
        units_per_em=tt["head"].unitsPerEm,
    )


_SUBSET_PROGRAMS: dict[tuple[str, tuple[int, ...]], tuple[dict[Any, Any], bytes]] = {}
_MAX_SUBSET_PROGRAMS = 256


class _StampFont(GlyphAccumulator):
    def __init__(
        self,
        font_file: str,
        parsed: _ParsedFont | None,
        *,
        writer: Any,
        font_handle: io.BytesIO,
        font_size: int,
        ot_script_tag: str | None,
        ot_language_tag: str | None,
        writing_direction: str | None,
        bcp47_lang_code: str | None,
        obj_stream: Any,
    ) -> None:
        self._font_file = font_file
        self._shared = parsed is not None
        if parsed is None:
            super().__init__(
                writer=writer,
                font_handle=font_handle,
                font_size=font_size,
                ot_script_tag=ot_script_tag,
                ot_language_tag=ot_language_tag,
                writing_direction=writing_direction,
                bcp47_lang_code=bcp47_lang_code,
                obj_stream=obj_stream,
            )
            return
        # What GlyphAccumulator.__init__ (pyHanko 0.38) does for a TrueType font, in the same order, with
        # the shared parse instead of a new one (a test compares the two engines attribute by attribute).
        FontEngine.__init__(
            self, writer, parsed.ps_name, embedded_subset=True, obj_stream=obj_stream, font_size=font_size
        )
        self.hb_font = parsed.hb_font
        self.tt = parsed.tt
        self._font_ref = writer.allocate_placeholder()
        self.cff_charset = None
        self.use_raw_gids = True
        self.cidfont_obj = CIDFontType2(parsed.tt, parsed.ps_name, self.subset_prefix)
        self.features = None
        self.units_per_em = parsed.units_per_em
        self._glyphs = {}
        self._glyph_set = parsed.glyph_set
        self._cid_to_unicode = {}
        self._GlyphAccumulator__reverse_cmap = None
        self.ot_language_tag = opentype._check_ot_tag(ot_language_tag)
        self.ot_script_tag = opentype._check_ot_tag(ot_script_tag)
        if writing_direction is not None and writing_direction not in ("ltr", "rtl", "ttb", "btt"):
            raise ValueError("Writing direction must be one of 'ltr', 'rtl', 'ttb' or 'btt'.")
        self.writing_direction = writing_direction
        self.bcp47_lang_code = bcp47_lang_code
        self._subset_created = self._write_prepared = False

    def _own_font(self) -> None:
        """Subsetting rewrites the font in place: give this engine a private parse of it first."""
        if self._shared:
            from fontTools.ttLib import TTFont

            own = TTFont(io.BytesIO(_font_bytes(self._font_file)))
            self.tt = own
            self.cidfont_obj._tt = own
            self._shared = False

    def prepare_write(self) -> None:
        if self._write_prepared or not isinstance(self.cidfont_obj, CIDFontType2):
            if not self._write_prepared and not self._subset_created:
                self._own_font()
            super().prepare_write()
            return
        key = (self._font_file, tuple(sorted(self._glyphs)))
        cached = _SUBSET_PROGRAMS.get(key)
        cidfont = self.cidfont_obj
        if cached is None:
            self._own_font()
            subset_and_write = cidfont.set_font_file

            def set_font_file(writer: Any) -> Any:
                ref = subset_and_write(writer)
                stream = ref.get_object()
                if len(_SUBSET_PROGRAMS) >= _MAX_SUBSET_PROGRAMS:
                    _SUBSET_PROGRAMS.clear()
                _SUBSET_PROGRAMS[key] = (dict(stream), stream.encoded_data)
                return ref
        else:
            self._subset_created = True  # what the subset would be is in the cache
            entries, encoded = cached

            def set_font_file(writer: Any) -> Any:
                ref = writer.add_object(generic.StreamObject(dict(entries), encoded_data=encoded))
                cidfont._font_descriptor[generic.pdf_name("/FontFile2")] = ref
                return ref

        cidfont.set_font_file = set_font_file  # type: ignore[method-assign]
        super().prepare_write()


@functools.cache
def _image(png: bytes) -> Image.Image:
    return Image.open(io.BytesIO(png)).convert("RGBA")


class _StampImage(PdfImage):
    """``PdfImage`` of a PNG, whose image XObject is compressed once per PNG (see ``image_xobject``)."""

    def __init__(self, png: bytes, writer: IncrementalPdfFileWriter) -> None:
        super().__init__(_image(png), writer=writer)
        self._png = png

    @property
    def image_ref(self) -> generic.IndirectObject:
        assert self.writer is not None
        ref = self._image_ref
        if ref is None or ref.get_pdf_handler() is not self.writer:
            self._image_ref = ref = image_xobject(self._png, self.image, self.writer)
        return ref


@dataclass(frozen=True)
class PdfSignOptions:
    role: SignatureRole = SignatureRole.ORGANISATION
    image: bytes | None = None  # PNG; defaults: a scribble (signer), a red seal (organisation)
    organisation_name: str = ""  # printed with the seal and on copies; default: the certificate's O
    signer_box: Box = SIGNER_BOX
    page: int = -1  # signer and seal go on the last page; copies always on page 1
    reason: str = ""
    location: str = ""
    field_name: str | None = None


COPY_TEXT = "Bản sao điện tử — %(organisation)s\nThời gian ký: %(signing_time)s"
COPY_FONT_SIZE = 10
COPY_MARGINS = (20.0, 16.0)  # from the right and the top edge of page 1
_TEXT_BOX_MARGIN = 10.0  # pyHanko's text box margin, on each side of the text
_MAX_PAGE_TREE_DEPTH = 32


def copy_box(page_box: Box, text: str, font_size: float = COPY_FONT_SIZE) -> Box:
    """The copy stamp's box: at the top right of ``page_box``, wide enough for ``text`` at ``font_size``
    (never shrunk: the stamp is drawn at its natural size)."""
    lines = text.split("\n")
    width = max(_text_width(line, font_size) for line in lines) + 2 * _TEXT_BOX_MARGIN + 2
    height = len(lines) * font_size * 1.2 + 2 * _TEXT_BOX_MARGIN + 10
    x1, y1 = page_box[2] - COPY_MARGINS[0], page_box[3] - COPY_MARGINS[1]
    return (max(page_box[0], x1 - width), y1 - height, x1, y1)


def _text_width(text: str, font_size: float) -> float:
    """The advance width of ``text`` in the stamp font (its subset is scaled to 1000 units per em)."""
    factory = _font()
    if not isinstance(factory, _StampFontFactory):
        return 0.6 * font_size * len(text)  # the standard Times-Roman fallback: a generous average
    tt = _parsed_font(factory.font_file)
    if tt is None:
        return 0.6 * font_size * len(text)
    cmap = tt.tt.getBestCmap()
    metrics = tt.tt["hmtx"].metrics
    notdef = metrics.get(".notdef", (tt.units_per_em // 2, 0))[0]
    units = sum(metrics.get(cmap.get(ord(ch), ".notdef"), (notdef, 0))[0] for ch in text)
    return float(units) * font_size / tt.units_per_em


def _page_box(writer: IncrementalPdfFileWriter, page: int) -> Box:
    """The visible area of a page (its CropBox, else its MediaBox, inherited through the page tree)."""
    node: Any = writer.find_page_for_modification(page)[0].get_object()
    for _ in range(_MAX_PAGE_TREE_DEPTH):
        for key in ("/CropBox", "/MediaBox"):
            if key in node:
                x0, y0, x1, y1 = (float(v) for v in node[key])
                return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        if "/Parent" not in node:
            break
        node = node["/Parent"]
    return (0.0, 0.0, 595.0, 842.0)  # A4, as PDF readers assume


def _style(
    options: PdfSignOptions, writer: IncrementalPdfFileWriter, params: dict[str, str]
) -> tuple[TextStampStyle, Box, int]:
    text_style = TextBoxStyle(font=_font(), font_size=COPY_FONT_SIZE)
    if options.role is SignatureRole.SIGNER:
        png = options.image or handwriting_png()
        background: PdfContent = _StampImage(png, writer)
        return (
            TextStampStyle(
                stamp_text="", text_box_style=_NO_TEXT, background=background, background_opacity=1.0, border_width=0
            ),
            options.signer_box,
            options.page,
        )
    if options.role is SignatureRole.ORGANISATION:
        png = options.image or seal_png()
        background = _StampImage(png, writer)
        return (
            TextStampStyle(
                stamp_text="%(organisation)s\n%(signing_time)s",
                text_box_style=text_style,
                background=background,
                background_opacity=1.0,
                border_width=0,
                background_layout=layout.SimpleBoxLayoutRule(
                    x_align=layout.AxisAlignment.ALIGN_MID,
                    y_align=layout.AxisAlignment.ALIGN_MAX,
                    margins=layout.Margins(bottom=SEAL_TEXT_HEIGHT),
                ),
                inner_content_layout=layout.SimpleBoxLayoutRule(
                    x_align=layout.AxisAlignment.ALIGN_MID,
                    y_align=layout.AxisAlignment.ALIGN_MIN,
                ),
            ),
            seal_box(options.signer_box),
            options.page,
        )
    return (
        TextStampStyle(
            stamp_text=COPY_TEXT,
            text_box_style=text_style,
            border_width=0,
            inner_content_layout=layout.SimpleBoxLayoutRule(
                x_align=layout.AxisAlignment.ALIGN_MAX,
                y_align=layout.AxisAlignment.ALIGN_MAX,
                inner_content_scaling=layout.InnerScaling.NO_SCALING,
            ),
        ),
        copy_box(_page_box(writer, 0), COPY_TEXT % params),
        0,
    )


def _organisation(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()


class PdfSigningKey:
    """A key prepared once for PAdES: the pyHanko signer is built once and reused for every document."""

    def __init__(self, key: SigningKey) -> None:
        self.key = key
        self.signer = pyhanko_signer(key)
        # CMS sizes this key's signatures needed, by (timestamped, long-term): how much room to reserve
        self.cms_sizes: dict[tuple[bool, bool], int] = {}


class LongTermError(SignError):
    """A B-LT signature could not get the validation data of the signer's chain (an OCSP responder or CRL address
    that does not answer, a chain that does not reach the roots given, a revoked certificate): a fault of the
    signer's certificates or of the network, not of the document, so a caller can tell the two apart."""


def sign_pdf(
    data: bytes,
    key: PdfSigningKey,
    options: PdfSignOptions = PdfSignOptions(),
    *,
    timestamper: TimeStamper | None = None,
    long_term: TrustStore | None = None,
    signing_time: datetime | None = None,
) -> bytes:
    """Add one PAdES signature (an incremental update; earlier signatures stay valid)."""
    when = (signing_time or datetime.now(VIETNAM_TIME)).astimezone(VIETNAM_TIME).replace(microsecond=0)

    def attempt(reserved: int) -> bytes:
        try:
            writer = IncrementalPdfFileWriter(io.BytesIO(data), strict=False)
        except (PdfError, ValueError) as e:
            raise SignError(f"not a PDF that can be signed: {e}") from None
        existing = sum(1 for _ in fields.enumerate_sig_fields(writer.prev))
        field_name = options.field_name or f"{options.role.value.capitalize()}{existing + 1}"
        params = {
            "organisation": options.organisation_name or _organisation(key.key.certificate),
            "signing_time": when.isoformat(),
        }
        style, box, page = _style(options, writer, params)
        meta = signers.PdfSignatureMetadata(
            field_name=field_name,
            md_algorithm="sha256",
            subfilter=fields.SigSeedSubFilter.PADES,
            reason=options.reason or None,
            location=options.location or None,
            embed_validation_info=long_term is not None,
            validation_context=long_term.validation_context(None) if long_term is not None else None,
        )
        pdf_signer = PdfSigner(
            meta,
            signer=key.signer,
            timestamper=timestamper,
            stamp_style=style,
            new_field_spec=SigFieldSpec(sig_field_name=field_name, on_page=page, box=_int_box(box)),
        )
        try:
            out = pdf_signer.sign_pdf(writer, appearance_text_params=params, bytes_reserved=reserved)
        except TimestampRequestError as e:  # down, refused, an HTTP error page, a refusal by the TSA
            raise TimestampError(f"timestamp authority {_tsa_name(timestamper)} did not answer: {_tsa_cause(e)}") from e
        except Exception as e:
            if timestamper is not None and _raised_by_timestamper(e):
                # a reply labelled as a timestamp that is not one: pyHanko lets asn1crypto's errors through
                # (ValueError, TypeError, …), which would otherwise read as a fault of the PDF or a traceback
                cause = f"an unreadable timestamp reply ({' '.join(str(e).split()) or type(e).__name__})"
                raise TimestampError(f"timestamp authority {_tsa_name(timestamper)} did not answer: {cause}") from e
            if long_term is not None and isinstance(e, SigningError) and e.__cause__ is not None:
                # pyHanko says only "The signer's certificate could not be validated"; the cause says why:
                # no revocation data could be fetched, revoked, no path to the roots given, …
                raise LongTermError(
                    "could not sign the PDF for the long term (B-LT): the signer's certificate chain could not be "
                    f"validated with revocation data: {' '.join(str(e.__cause__).split())}"
                ) from e
            if isinstance(e, (PdfError, SignatureValidationError, SigningError, ValueError)):
                raise SignError(f"could not sign the PDF: {e}") from e
            raise
        return bytes(out.getbuffer())

    # Reserving room for the CMS ourselves spares pyHanko a dry-run signature to measure it. The first
    # signature with a key gets a generous room; later ones the size that key's CMS turned out to need, with
    # a margin: every verifier reads the reserved /Contents as hex, so unused room costs each of them time.
    generous = 8192 + 4 * sum(len(c.public_bytes(Encoding.DER)) for c in (key.key.certificate, *key.key.chain))
    if timestamper is not None:
        generous += 12288
    shape = (timestamper is not None, long_term is not None)
    learned = key.cms_sizes.get(shape)
    # pyHanko counts the room in hex digits, two per CMS byte
    reserved = generous if learned is None else min(generous, 2 * (learned + max(2048, learned // 4)))
    try:
        signed = attempt(reserved)
    except SignError as e:
        if reserved == generous or "larger than expected" not in str(e):
            raise
        signed = attempt(generous)  # the CMS grew (a longer timestamp token): the generous room again
    size = _cms_size(signed)
    if size is not None:
        key.cms_sizes[shape] = max(size, key.cms_sizes.get(shape, 0))
    return signed


def _tsa_name(timestamper: TimeStamper | None) -> str:
    """The TSA's URL (pyHanko's HTTP timestampers keep it as ``url``), for the operator to know which one."""
    url = getattr(timestamper, "url", None)
    return str(url) if url else type(timestamper).__name__


def _tsa_cause(e: TimestampRequestError) -> str:
    """What went wrong, in words: pyHanko's own message is generic ("Error in communication with timestamp
    server") and hides the useful part in the HTTP response it carries or in the exceptions it chains."""
    response = e.args[1] if len(e.args) > 1 else None
    status = getattr(response, "status_code", None)
    if status is not None:
        reason = getattr(response, "reason", "") or ""
        content_type = getattr(response, "headers", {}).get("Content-Type") or "none"
        return f"HTTP {status} {reason}".rstrip() + f" with Content-Type {content_type}, not a timestamp reply"
    innermost: BaseException = e
    while innermost.__cause__ is not None or innermost.__context__ is not None:
        innermost = innermost.__cause__ or innermost.__context__  # type: ignore[assignment]
    if innermost is not e and str(innermost):
        return str(innermost)  # e.g. "[Errno 111] Connection refused", "timed out"
    return str(e.args[0]) if e.args else type(e).__name__


def _raised_by_timestamper(e: BaseException) -> bool:
    """Whether ``e`` came out of pyHanko's timestamp client (its traceback passes through it)."""
    tb = e.__traceback__
    while tb is not None:
        if _TIMESTAMPS_PACKAGE in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


_TIMESTAMPS_PACKAGE = os.path.join("pyhanko", "sign", "timestamps", "")


def _cms_size(pdf: bytes) -> int | None:
    """How many bytes of the last signature's reserved /Contents the CMS uses: the length its DER header
    says (the room after it is zeros; trimming zeros would miss a CMS that itself ends in a zero byte)."""
    start = pdf.rfind(b"/Contents <")
    if start < 0:
        return None
    start += len(b"/Contents <")
    try:
        head = bytes.fromhex(pdf[start : start + 12].decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    if len(head) < 2 or head[0] != 0x30:  # a CMS ContentInfo is a SEQUENCE
        return None
    if head[1] < 0x80:
        return 2 + head[1]
    width = head[1] & 0x7F
    if not 0 < width <= 4 or len(head) < 2 + width:
        return None
    return 2 + width + int.from_bytes(head[2 : 2 + width], "big")


# --- verification -------------------------------------------------------------------------------------

# More signatures than any official document carries (signer, seal, copies, co-signers); each costs a
# verification and a difference analysis, so a PDF of thousands of fields sharing one signature value (a
# few hundred KB) kept a node busy for minutes.
MAX_PDF_SIGNATURES = 50
# What reading one PDF may cost pyHanko (see signing._private.pdf_limits).
PDF_LIMITS = PdfLimits()


@contextmanager
def one_reading_budget() -> Iterator[None]:
    """Verify every PDF within this block on one reading budget (:data:`PDF_LIMITS`), e.g. all those of an
    envelope: a sender cannot multiply the bounds by attaching many PDFs."""
    with pdf_limits.reading_limits(PDF_LIMITS):
        yield


def verify_pdf(name: str, data: bytes, trust: TrustStore, *, at: datetime | None = None) -> list[SignatureReport]:
    """One report per signature in the PDF, each with the revisions added after it.

    The bytes come from a sender: whatever they hold, the answer is reports (a PDF that cannot be read, or
    that exceeds :data:`PDF_LIMITS` or :data:`MAX_PDF_SIGNATURES`, gives one failed report saying why).
    """
    with pdf_limits.reading_limits(PDF_LIMITS):
        try:
            reader = PdfFileReader(io.BytesIO(data), strict=False)
            # counted before pyHanko parses each signature's CMS, on its way to embedded_regular_signatures
            found = sum(
                1
                for _ in itertools.islice(
                    fields.enumerate_sig_fields(reader, filled_status=True), MAX_PDF_SIGNATURES + 1
                )
            )
            if found > MAX_PDF_SIGNATURES:
                return [_unreadable(name, f"the PDF has more than {MAX_PDF_SIGNATURES} signatures; none was verified")]
            pdf_limits.charge_signatures(found)
            embedded = reader.embedded_regular_signatures
            total = reader.xrefs.total_revisions
            signed_revisions = {s.signed_revision for s in reader.embedded_signatures}
            evidence = _embedded_evidence(reader)
        except (PdfError, ValueError, KeyError) as e:
            return [_unreadable(name, f"not a readable PDF: {e}")]
        except Exception as e:  # pyHanko trips over hostile structures in many ways (AttributeError, RecursionError…)
            return [_unreadable(name, f"not a readable PDF: {_error(e)}")]
        document = _Document(reader, total, signed_revisions, evidence)
        return [_verify_guarded(name, sig, trust, at, document) for sig in embedded]


@dataclass
class _Document:
    """What every signature of one PDF is judged against."""

    reader: PdfFileReader
    total_revisions: int
    signed_revisions: set[int]
    evidence: pdf_paths.Evidence  # the DSS: certificates, OCSP responses and CRLs embedded for the long term
    _changes: dict[int, pdf_changes.RevisionChanges] = field(default_factory=dict)

    @functools.cached_property
    def revocation_index(self) -> pdf_levels.RevocationIndex:
        """What the DSS's OCSP responses and CRLs are about (read once per document)."""
        return pdf_levels.RevocationIndex.of(self.evidence.ocsps, self.evidence.crls)

    @functools.cached_property
    def signature_fields(self) -> set[str]:
        """The names of the document's signature fields (listed once per document, not per signature)."""
        return {name for name, _, _ in fields.enumerate_sig_fields(self.reader)}

    def changes(self, revision: int) -> pdf_changes.RevisionChanges:
        """What ``revision`` changed (worked out once per document, shared by the signatures before it)."""
        found = self._changes.get(revision)
        if found is None:
            try:
                found = pdf_changes.revision_changes(self.reader, revision)
            except Exception as e:  # a hostile revision is named as such; pyHanko's verdict stands
                found = pdf_changes.RevisionChanges()
                found.add(f"objects that cannot be read ({_error(e)})", content=True)
            self._changes[revision] = found
        return found


def _embedded_evidence(reader: PdfFileReader) -> pdf_paths.Evidence:
    """The validation data of the document's DSS (PAdES B-LT), so that a signature can be validated with it
    offline and long after: as of its signing time, once its certificate expired or was revoked later."""
    try:
        dss = DocumentSecurityStore.read_dss(reader)
        return pdf_paths.Evidence(
            certs=tuple(x509.load_der_x509_certificate(c.dump()) for c in dss.load_certs()),
            ocsps=tuple(_stream_data(ref, DecodePurpose.OCSP_RESPONSE) for ref in dss.ocsps),
            crls=tuple(_stream_data(ref, DecodePurpose.CRL) for ref in dss.crls),
        )
    except NoDSSFoundError:
        return pdf_paths.Evidence()
    except (PdfError, ValueError, TypeError, KeyError, AttributeError) as e:
        # evidence that cannot be read helps no signature: each is validated without it (and says so if it
        # then lacks revocation data)
        logger.info("the DSS of a PDF cannot be read: %s", _error(e))
        return pdf_paths.Evidence()


def _stream_data(ref: Any, purpose: DecodePurpose) -> bytes:
    stream = ref.get_object()
    if not isinstance(stream, generic.StreamObject):
        raise ValueError("a DSS entry is not a stream")
    return stream.read_data(purpose)


def _unreadable(name: str, reason: str) -> SignatureReport:
    return _format_failure(f"attachment:{name}", reason)


def _format_failure(ident: str, reason: str) -> SignatureReport:
    """A failed report for a PDF, or one of its signatures (``ident``), that cannot be verified."""
    return SignatureReport(
        id=ident,
        format="PAdES",
        indication=Indication.TOTAL_FAILED,
        sub_indication=SubIndication.FORMAT_FAILURE,
        reasons=(reason,),
    )


def _error(e: Exception) -> str:
    """An unexpected error from reading a hostile PDF, named (its message alone may be empty or cryptic)."""
    return f"{type(e).__name__}: {str(e)[:300]}"


def _verify_guarded(
    name: str, sig: Any, trust: TrustStore, at: datetime | None, document: _Document
) -> SignatureReport:
    try:
        return _verify_one(name, sig, trust, at, document)
    except Exception as e:  # as in verify_pdf: a hostile PDF gets a failed report, never an exception
        return _format_failure(f"attachment:{name}#{sig.field_name}", f"the signature cannot be verified: {_error(e)}")


def _verify_one(name: str, sig: Any, trust: TrustStore, at: datetime | None, document: _Document) -> SignatureReport:
    ident = f"attachment:{name}#{sig.field_name}"
    total_revisions, signed_revisions = document.total_revisions, document.signed_revisions
    try:
        status, moment, source = asyncio.run(_validate(sig, trust, at, document.evidence))
    except (SignatureValidationError, PdfError, ValueError) as e:
        return _format_failure(ident, str(e))
    cert = x509.load_der_x509_certificate(status.signing_cert.dump())
    level = _modification_level(status)
    later = range(sig.signed_revision + 1, total_revisions)
    changes = {r: document.changes(r) for r in later}
    # Our rule on top of pyHanko's analysis: later signatures (and validation data, document timestamps) are
    # allowed; anything else that alters content is not: an annotation, a form field filled, a page, content.
    # pyHanko's FORM_FILLING covers both a later signature and filling a text field: the fields it names
    # changed must all be signature fields.
    changed_fields = set(getattr(status.diff_result, "changed_form_fields", None) or ())
    filled = sorted(changed_fields - document.signature_fields)
    docmdp_broken = status.docmdp_ok is False  # e.g. a certification with P=1, then anything at all
    modified = level in ("ANNOTATIONS", "OTHER") or bool(filled) or docmdp_broken
    revisions = tuple(
        PdfRevision(
            index=r,
            allowed=not modified
            or (
                r in signed_revisions
                and level != "OTHER"
                and not docmdp_broken
                and not changes[r].content  # a form field changed here is content
            ),
            modification_level="SIGNATURE" if r in signed_revisions and level != "OTHER" else level,
            description=("a later signature" if r in signed_revisions else "an incremental update")
            + f": {changes[r].description}",
        )
        for r in later
    )
    indication, sub, reasons = Indication.TOTAL_PASSED, None, []
    if not status.intact:
        indication, sub = Indication.TOTAL_FAILED, SubIndication.HASH_FAILURE
        reasons.append("the signed bytes of the PDF were changed")
    elif not status.valid:
        indication, sub = Indication.TOTAL_FAILED, SubIndication.SIG_CRYPTO_FAILURE
        reasons.append("the signature value does not verify")
    elif status.coverage is None or status.coverage.name not in ("ENTIRE_FILE", "ENTIRE_REVISION"):
        indication, sub = Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE
        reasons.append(f"the signature covers an unusual part of the file ({status.coverage})")
    elif modified:
        indication, sub = Indication.TOTAL_FAILED, SubIndication.MODIFIED_AFTER_SIGNING
        reasons.append(_modified_reason(level, filled, docmdp_broken, revisions, changes, status))
    elif status.timestamp_validity is not None and not (
        status.timestamp_validity.intact and status.timestamp_validity.valid
    ):
        indication, sub = Indication.TOTAL_FAILED, SubIndication.TIMESTAMP_FAILURE
        reasons.append(
            "the signature timestamp does not cover this signature"
            if not status.timestamp_validity.intact
            else "the signature timestamp's own signature does not verify"
        )
    elif status.revoked:
        indication, sub = Indication.TOTAL_FAILED, SubIndication.REVOKED
        reasons.append("the signer's certificate is revoked")
    elif not status.trusted:
        indication, sub = Indication.INDETERMINATE, _untrusted_reason(status)
        problem = getattr(status, "trust_problem_indic", None)
        if problem is not None and "CHAIN_CONSTRAINTS" in problem.name:
            reasons.append(
                "the signer's certificate is not for signing documents: its key usage lacks non-repudiation "
                f"({problem.name})"
            )
        else:
            reasons.append(
                "the signer's certificate could not be validated"
                + (f" ({problem.name})" if problem is not None else "")
            )
    timestamp = None
    if status.timestamp_validity is not None:
        ts = status.timestamp_validity
        timestamp = TimestampInfo(
            time=ts.timestamp,
            tsa=subject_name(ts.signing_cert),
            imprint_matches=ts.intact,
            valid=ts.intact and ts.valid and ts.trusted,
        )
    return SignatureReport(
        id=ident,
        format="PAdES",
        level=_pades_level(sig, status, document),
        indication=indication,
        sub_indication=sub,
        reasons=tuple(reasons),
        signer=CertificateInfo.of(cert),
        claimed_signing_time=status.signer_reported_dt,
        validation_time=moment or datetime.now(UTC),
        validation_time_source=source,
        timestamp=timestamp,
        revisions_after=revisions,
        role=_role_of(sig.field_name),
        signed_parts=(_covered(sig.signed_revision, total_revisions, status),),
    )


async def _validate(
    sig: Any, trust: TrustStore, at: datetime | None, evidence: pdf_paths.Evidence
) -> tuple[PdfSignatureStatus, datetime | None, ValidationTimeSource]:
    """pyHanko's validation of ``sig``, the signer's path validated at the validation time, and that time.

    The validation time (as for envelopes, ETSI EN 319 102-1): ``at`` when asked for; otherwise the time a
    trusted, valid signature timestamp proves the signature existed at (a revocation or expiry after it does
    not invalidate the signature, one before it does); otherwise now. pyHanko validates the signer and the
    timestamp each with a context of one fixed moment, so the timestamp is checked first, on its own, and
    the signer's path then at the time it proves. The timestamp itself is validated now (its TSA must be
    trusted now), with the document's DSS.
    """
    if at is not None:
        with pdf_paths.reusing_passed_paths(trust, at, evidence) as context:
            return await async_validate_pdf_signature(sig, signer_validation_context=context), at, "requested"
    ts_context = trust.validation_context(None, extra_certs=evidence.certs, ocsps=evidence.ocsps, crls=evidence.crls)
    proved = await _proved_time(sig, ts_context)
    with pdf_paths.reusing_passed_paths(trust, proved, evidence) as context:
        status = await async_validate_pdf_signature(
            sig, signer_validation_context=context, ts_validation_context=ts_context
        )
    return status, proved, "timestamp" if proved is not None else "current"


async def _proved_time(sig: Any, context: ValidationContext) -> datetime | None:
    """The time of the signature's first signature timestamp that covers it, verifies and is trusted."""
    try:
        for token in generic_cms.extract_tst_data_iter(sig.signer_info, signed=False):
            found = TimestampSignatureStatus(
                **await generic_cms.validate_tst_signed_data(
                    token, context, generic_cms.message_imprint_checker(sig.signer_info)
                )
            )
            if found.intact and found.valid and found.trusted:
                return found.timestamp
    except Exception as e:  # pyHanko's own validation, next, meets the same problem and reports it
        logger.debug("the signature timestamp cannot be checked on its own: %s", _error(e))
    return None


def _covered(signed_revision: int, total: int, status: PdfSignatureStatus) -> str:
    """Which revisions a signature covers (1-based): from the first to the one it signed."""
    upto = signed_revision + 1
    covered = f"revision 1 of {total}" if upto == 1 else f"revisions 1-{upto} of {total}"
    whole = status.coverage is not None and status.coverage.name == "ENTIRE_FILE"
    return covered + (" (the whole file)" if whole else "")


def _modified_reason(
    level: str,
    filled: list[str],
    docmdp_broken: bool,
    revisions: tuple[PdfRevision, ...],
    changes: dict[int, pdf_changes.RevisionChanges],
    status: PdfSignatureStatus,
) -> str:
    """Why the signature no longer stands for the document: what changed, and where."""
    what = [f"revision {r.index + 1}: {changes[r.index].description}" for r in revisions if not r.allowed]
    if filled:
        what.append("form field(s) " + ", ".join(filled) + " changed")
    if docmdp_broken and level not in ("ANNOTATIONS", "OTHER") and not filled:
        what.append("the certification signature's permissions (DocMDP) allow no such change")
    if level == "OTHER" and status.diff_result is not None and not hasattr(status.diff_result, "changed_form_fields"):
        what.append(f"pyHanko: {' '.join(str(status.diff_result).split())[:300]}")
    return "the document was changed after this signature in a way that is not allowed" + (
        " (" + "; ".join(what) + ")" if what else ""
    )


def _modification_level(status: PdfSignatureStatus) -> str:
    level = getattr(status, "modification_level", None)
    return level.name if level is not None else "NONE"


def _untrusted_reason(status: PdfSignatureStatus) -> SubIndication:
    summary = str(getattr(status, "trust_problem_indic", "") or "").upper()
    if "CHAIN_CONSTRAINTS" in summary:  # pyHanko's verdict when the signer's key usage does not allow signing
        return SubIndication.SIG_CONSTRAINTS_FAILURE
    if "EXPIRED" in summary or "OUT_OF_BOUNDS" in summary:
        return SubIndication.EXPIRED
    if "NOT_YET_VALID" in summary:
        return SubIndication.NOT_YET_VALID
    if "REVOCATION" in summary or "TRY_LATER" in summary:
        return SubIndication.REVOCATION_UNKNOWN
    if "CRYPTO_CONSTRAINTS" in summary or "ALGORITHM" in summary:
        return SubIndication.SIG_CONSTRAINTS_FAILURE
    return SubIndication.NO_CERTIFICATE_CHAIN_FOUND


def _pades_level(sig: Any, status: PdfSignatureStatus, document: _Document) -> str:
    """B-B, B-T, B-LT or B-LTA, by what the document holds for this signature (see signing._private.pdf_levels)."""
    path = status.validation_path
    certs = list(path.iter_certs(include_root=False)) if path is not None else [status.signing_cert]
    return pdf_levels.pades_level(
        timestamped=status.timestamp_validity is not None,
        path=certs,
        revocation_data=document.revocation_index | pdf_levels.cms_revocation_data(sig.signer_info),
        covered_by_document_timestamp=any(
            ts.signed_revision > sig.signed_revision for ts in document.reader.embedded_timestamp_signatures
        ),
    )


def _role_of(field_name: str) -> str:
    lowered = field_name.lower()
    return next((r.value for r in SignatureRole if lowered.startswith(r.value)), "")


def verify_pdf_document(
    data: bytes, trust: TrustStore, *, name: str = "document.pdf", at: datetime | None = None
) -> VerificationReport:
    return VerificationReport(
        document=name,
        document_sha256=hashlib.sha256(data).hexdigest(),
        kind="pdf",
        verified_at=datetime.now(UTC),
        signatures=tuple(verify_pdf(name, data, trust, at=at)),
    )


def _int_box(box: Box) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = (round(v) for v in box)
    return (x0, y0, x1, y1)
