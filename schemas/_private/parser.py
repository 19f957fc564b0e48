"""Read edXML bytes into the model, strictly (what we emit) or tolerantly (what real traffic carries)."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import IO, Any

from lxml import etree
from pydantic import ValidationError

from schemas._private.dates import parse_date, parse_timestamp
from schemas._private.safe_xml import XmlLimits, iterparse_safely, location_of
from schemas.attachments import (
    AttachmentLimits,
    DecodedAttachment,
    content_type_problem,
    decode_attachment,
    sanitize_attachment_name,
)
from schemas.document_id import DocumentIdForm, document_id_form
from schemas.errors import AttachmentError, InvalidEdxmlError, Location, UnsafeXmlError
from schemas.model import NAMESPACE, DocumentMessage, Message, StatusMessage

XMLDSIG_NAMESPACE = "http://www.w3.org/2000/09/xmldsig#"
_MAX_REPORTED_PROBLEMS = 25
Source = bytes | bytearray | memoryview | IO[bytes] | str | os.PathLike[str]


class ParseMode(Enum):
    STRICT = "strict"  # our own form, validated against schemas/edxml/*.xsd; quirks are errors
    TOLERANT = "tolerant"  # real-world quirks accepted with a warning where they are harmless


class SignatureBlock(Enum):
    """What the parser saw where the envelope signature goes (it does not verify it)."""

    NONE = "none"
    XMLDSIG = "xmldsig"  # a ds:Signature: the signing package verifies it
    LEGACY = "legacy"  # an unprefixed Signature in the edXML namespace with placeholder values


_XML_DEFAULTS = XmlLimits()
_ATTACHMENT_DEFAULTS = AttachmentLimits()


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """All bounds applied while reading one message."""

    max_bytes: int = _XML_DEFAULTS.max_bytes
    max_depth: int = _XML_DEFAULTS.max_depth
    max_elements: int = _XML_DEFAULTS.max_elements
    max_attachment_bytes: int = _ATTACHMENT_DEFAULTS.max_attachment_bytes
    max_total_attachment_bytes: int = _ATTACHMENT_DEFAULTS.max_total_bytes
    max_attachments: int = _ATTACHMENT_DEFAULTS.max_attachments
    max_compression_ratio: int = _ATTACHMENT_DEFAULTS.max_compression_ratio

    @property
    def xml(self) -> XmlLimits:
        return XmlLimits(self.max_bytes, self.max_depth, self.max_elements)

    @property
    def attachments(self) -> AttachmentLimits:
        return AttachmentLimits(
            self.max_attachment_bytes, self.max_total_attachment_bytes, self.max_attachments, self.max_compression_ratio
        )


@dataclass(frozen=True, slots=True)
class ParseWarning:
    """Something accepted that a reader should know about. ``code`` is stable; ``message`` is for people."""

    code: str
    message: str
    location: Location | None = None

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    message: Message
    mode: ParseMode
    warnings: tuple[ParseWarning, ...]
    signature: SignatureBlock


def parse_message(
    source: Source, *, mode: ParseMode = ParseMode.STRICT, limits: ParseLimits = ParseLimits()
) -> ParsedMessage:
    """Parse one edXML message (document or status).

    ``source`` is the bytes, a binary file object, or a path. Raises :class:`UnreadableXmlError`
    (not XML, or refused as unsafe: :class:`UnsafeXmlError`) or :class:`InvalidEdxmlError` with every
    problem found and where.
    """
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as stream:
            return parse_message(stream, mode=mode, limits=limits)
    prolog, events = iterparse_safely(source, limits=limits.xml, allow_stray_prefix=mode is ParseMode.TOLERANT)
    reader = _Reader(mode)
    if prolog.stray_prefix:
        reader.quirk("stray-prefix", f"{prolog.stray_prefix} stray bytes before the XML declaration were skipped", None)
    root, decoded = _read_tree(events, limits.attachments)
    return reader.read(root, decoded)


class _AttachmentDecoder:
    """Decodes ContentTransferEncoded elements one by one, keeping count of the message's limits."""

    def __init__(self, limits: AttachmentLimits) -> None:
        self.limits = limits
        self.decoded: dict[etree._Element, DecodedAttachment] = {}
        self.total = 0

    def feed(self, element: etree._Element) -> bool:
        """Decode ``element`` if it is an attachment's content; True when it was."""
        parent = element.getparent()
        if parent is None or etree.QName(parent).localname != "Attachment":
            return False
        if len(self.decoded) >= self.limits.max_attachments:
            raise UnsafeXmlError(
                f"message has more than {self.limits.max_attachments} attachments", location_of(element)
            )
        item = decode_attachment(element.text or "", limits=self.limits, location=location_of(element))
        self.total += len(item.data)
        if self.total > self.limits.max_total_bytes:
            raise AttachmentError(
                f"attachments total more than the limit of {self.limits.max_total_bytes} bytes", location_of(element)
            )
        self.decoded[parent] = item
        return True


def _read_tree(events: Any, limits: AttachmentLimits) -> tuple[etree._Element, dict[etree._Element, DecodedAttachment]]:
    """Drain the events, decoding each attachment as soon as its text is complete and then dropping the text."""
    root: etree._Element | None = None
    decoder = _AttachmentDecoder(limits)
    for event, element in events:
        if root is None:
            root = element
        if event == "end" and etree.QName(element).localname == "ContentTransferEncoded" and decoder.feed(element):
            element.text = None  # the decoded file is kept; its base64 is not needed any more
    assert root is not None  # iterparse raises on an empty document
    return root, decoder.decoded


def parse_tree(
    root: etree._Element, *, mode: ParseMode = ParseMode.STRICT, limits: ParseLimits = ParseLimits()
) -> ParsedMessage:
    """Read a message from a tree already parsed safely (see :func:`parse_xml_safely`); the tree is not changed.

    The signing package uses this to read the very elements whose signature it checked.
    """
    decoder = _AttachmentDecoder(limits.attachments)
    for element in root.iter(f"{{{NAMESPACE}}}ContentTransferEncoded", "ContentTransferEncoded"):
        decoder.feed(element)
    return _Reader(mode).read(root, decoder.decoded)


@functools.cache
def _schema(kind: str) -> Any:
    import xmlschema

    path = resources.files("schemas") / "edxml" / f"edxml-{kind}.xsd"
    # Only our own packaged files are ever loaded ("local": no network); the documents validated are
    # lxml trees we already parsed safely, so xmlschema never parses untrusted bytes itself.
    return xmlschema.XMLSchema10(str(path), allow="local", defuse="always")


def schema_path(kind: str) -> Path:
    """Where the strict XSD for ``kind`` ('document' or 'status') is installed."""
    return Path(str(resources.files("schemas") / "edxml" / f"edxml-{kind}.xsd"))


def _xsd_problems(root: etree._Element, kind: str) -> list[tuple[Location | None, str]]:
    problems: list[tuple[Location | None, str]] = []
    for error in _schema(kind).iter_errors(root):
        elem = error.elem if isinstance(getattr(error, "elem", None), etree._Element) else None
        location = (
            location_of(elem)
            if elem is not None
            else Location(getattr(error, "sourceline", None), str(error.path or ""))
        )
        problems.append((location, str(error.reason or error.message)))
        if len(problems) >= _MAX_REPORTED_PROBLEMS:
            break
    return problems


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname


class _Reader:
    """Walks the tree once, turning it into model data and collecting problems and warnings."""

    def __init__(self, mode: ParseMode) -> None:
        self.mode = mode
        self.warnings: list[ParseWarning] = []
        self.problems: list[tuple[Location | None, str]] = []
        self.origins: dict[tuple[str | int, ...], etree._Element] = {}

    # --- findings -------------------------------------------------------------------------------
    def quirk(self, code: str, message: str, element: etree._Element | None) -> None:
        """A real-world deviation: a warning in tolerant mode, an error naming it in strict mode."""
        location = location_of(element) if element is not None else None
        if self.mode is ParseMode.STRICT:
            self.problems.append((location, f"{message} (accepted with a warning in tolerant mode)"))
        else:
            self.warnings.append(ParseWarning(code, message, location))

    def note(self, code: str, message: str, element: etree._Element | None) -> None:
        self.warnings.append(ParseWarning(code, message, location_of(element) if element is not None else None))

    def problem(self, message: str, element: etree._Element | None) -> None:
        self.problems.append((location_of(element) if element is not None else None, message))

    # --- navigation -----------------------------------------------------------------------------
    @staticmethod
    def _ours(element: etree._Element) -> bool:
        return isinstance(element.tag, str) and etree.QName(element).namespace in (NAMESPACE, None)

    def child(self, parent: etree._Element, *names: str) -> etree._Element | None:
        for element in parent:
            if self._ours(element) and _local(element) in names:
                return element
        return None

    def children(self, parent: etree._Element, name: str) -> list[etree._Element]:
        return [e for e in parent if self._ours(e) and _local(e) == name]

    def require(self, parent: etree._Element, name: str) -> etree._Element | None:
        element = self.child(parent, name)
        if element is None:
            self.problem(f"missing element {name}", parent)
        return element

    def text(
        self,
        parent: etree._Element,
        name: str,
        loc: tuple[str | int, ...],
        *,
        required: bool = True,
        token: bool = False,
    ) -> str | None:
        element = self.require(parent, name) if required else self.child(parent, name)
        if element is None:
            return None
        self.origins[loc] = element
        if len(element):
            self.problem(f"{name} must hold text, not elements", element)
        value = element.text or ""
        if token and value != value.strip():
            self.quirk("surrounding-space", f"{name} {value!r} has surrounding white space", element)
            value = value.strip()
        return value

    # --- typed values ---------------------------------------------------------------------------
    def _convert(
        self,
        parent: etree._Element,
        name: str,
        loc: tuple[str | int, ...],
        required: bool,
        convert: Callable[[str, etree._Element], Any],
    ) -> Any:
        value = self.text(parent, name, loc, required=required, token=True)
        if value is None or (value == "" and not required):
            return None
        element = self.origins[loc]
        try:
            return convert(value, element)
        except ValueError as e:
            self.problem(f"{name}: {e}", element)
            return None

    def date(self, parent: etree._Element, name: str, loc: tuple[str | int, ...], required: bool = True) -> date | None:
        def convert(text: str, element: etree._Element) -> date:
            value, day_first = parse_date(text)
            if day_first:
                self.quirk(
                    "day-first-date", f"{name} {text!r} is written dd/MM/yyyy; read as {value:%Y/%m/%d}", element
                )
            return value

        return self._convert(parent, name, loc, required, convert)  # type: ignore[no-any-return]

    def timestamp(self, parent: etree._Element, name: str, loc: tuple[str | int, ...]) -> datetime | None:
        def convert(text: str, element: etree._Element) -> datetime:
            value, day_first = parse_timestamp(text)
            if day_first:
                self.quirk(
                    "day-first-date",
                    f"{name} {text!r} is written dd/MM/yyyy; read as {value:%Y/%m/%d %H:%M:%S}",
                    element,
                )
            return value

        return self._convert(parent, name, loc, True, convert)  # type: ignore[no-any-return]

    def integer(
        self, parent: etree._Element, name: str, loc: tuple[str | int, ...], required: bool = True
    ) -> int | None:
        def convert(text: str, element: etree._Element) -> int:
            if not text.isascii() or not text.isdigit():
                raise ValueError(f"{text!r} is not a whole number")
            return int(text)

        return self._convert(parent, name, loc, required, convert)  # type: ignore[no-any-return]

    def flag(self, parent: etree._Element, name: str, loc: tuple[str | int, ...]) -> bool | None:
        def convert(text: str, element: etree._Element) -> bool:
            lowered = text.lower()
            if lowered in ("1", "true"):
                return True
            if lowered in ("0", "false"):
                return False
            raise ValueError(f"{text!r} is not 0/1 or true/false")

        return self._convert(parent, name, loc, True, convert)  # type: ignore[no-any-return]

    # --- the message ----------------------------------------------------------------------------
    def read(self, root: etree._Element, decoded: dict[etree._Element, DecodedAttachment]) -> ParsedMessage:
        if _local(root) != "edXML":
            raise InvalidEdxmlError(f"root element is {_local(root)}, not edXML", location_of(root))
        if etree.QName(root).namespace != NAMESPACE:
            self.quirk("namespace", f"root element is not in the edXML namespace {NAMESPACE}", root)
        envelope = self.require(root, "edXMLEnvelope")
        header = self.require(envelope, "edXMLHeader") if envelope is not None else None
        if envelope is None or header is None:
            raise self._invalid()
        message_header = self.require(header, "MessageHeader")
        if message_header is None:
            raise self._invalid()
        signature = self._signature(header)
        is_status = self.child(message_header, "StatusCode") is not None
        data = (
            self._status(header, message_header)
            if is_status
            else self._document(root, envelope, header, message_header, decoded)
        )
        if self.problems:
            raise self._invalid()
        model_type: type[StatusMessage] | type[DocumentMessage] = StatusMessage if is_status else DocumentMessage
        # The model speaks first: its messages name the rule ("only 0-9, A-Z and '.'"), the XSD's only the
        # pattern. The XSD then checks what the model does not see: order, namespaces, stray elements.
        try:
            message = model_type.model_validate(data)
        except ValidationError as e:
            self._model_problems(e, root)
            raise self._invalid() from None
        if self.mode is ParseMode.STRICT:
            self.problems = _xsd_problems(root, "status" if is_status else "document")
            if self.problems:
                raise self._invalid()
        return ParsedMessage(message, self.mode, tuple(self.warnings), signature)

    def _invalid(self) -> InvalidEdxmlError:
        problems = tuple(self.problems[:_MAX_REPORTED_PROBLEMS])
        first_location, first = problems[0]
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        return InvalidEdxmlError(f"not a valid edXML message: {first}{more}", first_location, problems)

    def _model_problems(self, error: ValidationError, root: etree._Element) -> None:
        for item in error.errors():
            loc = tuple(item["loc"])
            element = None
            for n in range(len(loc), -1, -1):
                element = self.origins.get(loc[:n])
                if element is not None:
                    break
            msg = item["msg"].removeprefix("Value error, ")
            name = _local(element) if element is not None else ".".join(str(p) for p in loc)
            self.problems.append((location_of(element if element is not None else root), f"{name}: {msg}"))

    def _signature(self, header: etree._Element) -> SignatureBlock:
        for element in header:
            if not isinstance(element.tag, str) or _local(element) != "Signature":
                continue
            if etree.QName(element).namespace == XMLDSIG_NAMESPACE:
                return SignatureBlock.XMLDSIG
            algorithms = " ".join(e.get("Algorithm", "") for e in element.iter() if isinstance(e.tag, str))
            sha1 = " (RSA-SHA1 placeholder)" if "sha1" in algorithms.lower() else ""
            self.quirk(
                "legacy-signature",
                f"legacy Signature block without the XMLDSig namespace{sha1} ignored: it is not a "
                "verifiable signature, so the message counts as unsigned",
                element,
            )
            return SignatureBlock.LEGACY
        return SignatureBlock.NONE

    def _organization(self, element: etree._Element, loc: tuple[str | int, ...]) -> dict[str, Any]:
        self.origins[loc] = element
        out: dict[str, Any] = {"organ_id": self.text(element, "OrganId", (*loc, "organ_id"), token=True)}
        for field, name in (
            ("organ_name", "OrganName"),
            ("organization_in_charge", "OrganizationInCharge"),
            ("organ_add", "OrganAdd"),
            ("email", "Email"),
            ("telephone", "Telephone"),
            ("fax", "Fax"),
            ("website", "Website"),
        ):
            out[field] = (
                self.text(element, name, (*loc, field), required=field == "organ_name" or self.mode is ParseMode.STRICT)
                or ""
            )
        return out

    def _response_for(self, element: etree._Element, loc: tuple[str | int, ...]) -> dict[str, Any]:
        self.origins[loc] = element
        return {
            "organ_id": self.text(element, "OrganId", (*loc, "organ_id"), token=True),
            "code": self.text(element, "Code", (*loc, "code")) or "",
            "promulgation_date": self.date(element, "PromulgationDate", (*loc, "promulgation_date"), required=False),
            "document_id": self._document_id(element, (*loc, "document_id")),
        }

    def _document_id(self, parent: etree._Element, loc: tuple[str | int, ...]) -> str | None:
        value = self.text(parent, "DocumentId", loc, token=True)
        if value:
            form = document_id_form(value)
            if form is DocumentIdForm.UUID:
                self.note(
                    "document-id-uuid",
                    f"DocumentId {value!r} is a UUID, not the conventional "
                    "<OrganId>,<yyyy/MM/dd>,<number>/<notation> form",
                    self.origins[loc],
                )
            elif form is DocumentIdForm.OTHER:
                self.note(
                    "document-id-other",
                    f"DocumentId {value!r} is neither the conventional form nor a UUID",
                    self.origins[loc],
                )
        return value

    def _is_empty(self, element: etree._Element) -> bool:
        return len(element) == 0 and not (element.text or "").strip()

    def _staff(self, element: etree._Element | None, loc: tuple[str | int, ...]) -> dict[str, Any]:
        if element is None:
            return {}
        self.origins[loc] = element
        required = self.mode is ParseMode.STRICT
        return {
            field: self.text(element, name, (*loc, field), required=required) or ""
            for field, name in (
                ("department", "Department"),
                ("staff", "Staff"),
                ("email", "Email"),
                ("mobile", "Mobile"),
            )
        }

    def _trace(self, trace_list: etree._Element | None, loc: tuple[str | int, ...]) -> list[dict[str, Any]]:
        if trace_list is None:
            return []
        hops = []
        for i, hop in enumerate(self.children(trace_list, "TraceHeader")):
            self.origins[(*loc, i)] = hop
            hops.append(
                {
                    "organ_id": self.text(hop, "OrganId", (*loc, i, "organ_id"), token=True),
                    "timestamp": self.timestamp(hop, "Timestamp", (*loc, i, "timestamp")),
                }
            )
        return hops

    def _status(self, header: etree._Element, mh: etree._Element) -> dict[str, Any]:
        h = ("header",)
        from_ = self.require(mh, "From")
        response_for = self.require(mh, "ResponseFor")
        if response_for is not None and self._is_empty(response_for):
            self.problem("ResponseFor is empty: a status message must name the document it answers", response_for)
            response_for = None
        return {
            "header": {
                "from": self._organization(from_, (*h, "from")) if from_ is not None else None,
                "response_for": self._response_for(response_for, (*h, "response_for"))
                if response_for is not None
                else None,
                "staff_info": self._staff(self.child(mh, "StaffInfo"), (*h, "staff_info")),
                "status_code": self.integer(mh, "StatusCode", (*h, "status_code")),
                "description": self.text(mh, "Description", (*h, "description"), required=self.mode is ParseMode.STRICT)
                or "",
                "timestamp": self.timestamp(mh, "Timestamp", (*h, "timestamp")),
            },
            "trace": self._trace(self.require(header, "TraceHeaderList"), ("trace",)),
        }

    def _document(
        self,
        root: etree._Element,
        envelope: etree._Element,
        header: etree._Element,
        mh: etree._Element,
        decoded: dict[etree._Element, DecodedAttachment],
    ) -> dict[str, Any]:
        h = ("header",)
        strict = self.mode is ParseMode.STRICT
        out: dict[str, Any] = {}
        from_ = self.require(mh, "From")
        out["from"] = self._organization(from_, (*h, "from")) if from_ is not None else None
        out["to"] = [self._organization(e, (*h, "to", i)) for i, e in enumerate(self.children(mh, "To"))]
        if not out["to"]:
            self.problem("a document message needs at least one To", mh)
        out["document_id"] = self._document_id(mh, (*h, "document_id"))
        if (code := self.require(mh, "Code")) is not None:
            self.origins[(*h, "code")] = code
            out["code"] = {
                "code_number": self.text(code, "CodeNumber", (*h, "code", "code_number")),
                "code_notation": self.text(code, "CodeNotation", (*h, "code", "code_notation"), required=strict) or "",
            }
        if (prom := self.require(mh, "PromulgationInfo")) is not None:
            self.origins[(*h, "promulgation_info")] = prom
            out["promulgation_info"] = {
                "place": self.text(prom, "Place", (*h, "promulgation_info", "place"), required=strict) or "",
                "promulgation_date": self.date(
                    prom, "PromulgationDate", (*h, "promulgation_info", "promulgation_date")
                ),
            }
        if (dtype := self.child(mh, "DocumentType")) is not None or strict:
            dtype = dtype if dtype is not None else self.require(mh, "DocumentType")
            if dtype is not None:
                loc = (*h, "document_type")
                self.origins[loc] = dtype
                out["document_type"] = {
                    k: v
                    for k, v in (
                        ("type", self.integer(dtype, "Type", (*loc, "type"), required=strict)),
                        ("type_detail", self.integer(dtype, "TypeDetail", (*loc, "type_detail"), required=strict)),
                        ("type_name", self.text(dtype, "TypeName", (*loc, "type_name"), required=strict)),
                    )
                    if v is not None
                }
        out["subject"] = self.text(mh, "Subject", (*h, "subject"))
        out["content"] = self.text(mh, "Content", (*h, "content"), required=strict) or ""
        if (signer := self.child(mh, "SignerInfo")) is not None or strict:
            signer = signer if signer is not None else self.require(mh, "SignerInfo")
            if signer is not None:
                loc = (*h, "signer_info")
                self.origins[loc] = signer
                out["signer_info"] = {
                    f: self.text(signer, n, (*loc, f), required=strict) or ""
                    for f, n in (("competence", "Competence"), ("position", "Position"), ("full_name", "FullName"))
                }
        due = self.child(mh, "DueDate")
        if due is not None and (due.text or "").strip():
            out["due_date"] = self.date(mh, "DueDate", (*h, "due_date"))
        if (other := self.child(mh, "OtherInfo")) is not None or strict:
            other = other if other is not None else self.require(mh, "OtherInfo")
            if other is not None:
                out["other_info"] = self._other_info(other, (*h, "other_info"))
        out["response_for"] = []
        for element in self.children(mh, "ResponseFor"):
            if self._is_empty(element):
                self.quirk("empty-response-for", "empty <ResponseFor/> read as 'answers no document'", element)
                continue
            out["response_for"].append(self._response_for(element, (*h, "response_for", len(out["response_for"]))))
        steering = self.integer(mh, "SteeringType", (*h, "steering_type"), required=strict)
        if steering is not None:
            out["steering_type"] = steering
        if (places := self.child(mh, "ToPlaces")) is not None:
            out["to_places"] = [p.text or "" for p in self.children(places, "Place")]
        trace_list = self.require(header, "TraceHeaderList")
        business = None
        if trace_list is not None:
            business = self.child(trace_list, "Bussiness")
            if business is None and (business := self.child(trace_list, "Business")) is not None:
                self.quirk("business-spelling", "block spelled Business; edXML spells it Bussiness", business)
            if business is None:
                self.problem("missing element Bussiness (the business block of a document message)", trace_list)
        return {
            "header": out,
            "business": self._business(business, ("business",)) if business is not None else None,
            "trace": self._trace(trace_list, ("trace",)),
            "attachments": self._attachments(root, envelope, decoded),
        }

    def _other_info(self, other: etree._Element, loc: tuple[str | int, ...]) -> dict[str, Any]:
        strict = self.mode is ParseMode.STRICT
        self.origins[loc] = other
        out: dict[str, Any] = {
            "priority": self.integer(other, "Priority", (*loc, "priority"), required=strict),
            "sphere_of_promulgation": self.text(
                other, "SphereOfPromulgation", (*loc, "sphere_of_promulgation"), required=strict
            ),
            "typer_notation": self.text(other, "TyperNotation", (*loc, "typer_notation"), required=strict),
            "promulgation_amount": self.integer(
                other, "PromulgationAmount", (*loc, "promulgation_amount"), required=strict
            ),
            "page_amount": self.integer(other, "PageAmount", (*loc, "page_amount"), required=strict),
        }
        if strict or self.child(other, "Direction") is not None:
            out["direction"] = self.flag(other, "Direction", (*loc, "direction"))
        if (appendixes := self.child(other, "Appendixes")) is not None:
            out["appendixes"] = [a.text or "" for a in self.children(appendixes, "Appendix")]
        return {k: v for k, v in out.items() if v is not None}

    def _spelling(self, parent: etree._Element, name: str) -> str:
        """``name`` as edXML spells it (Bussiness…), or the single-s spelling some systems write, with a quirk."""
        single = name.replace("Bussiness", "Business")
        if self.child(parent, name) is None and (element := self.child(parent, single)) is not None:
            self.quirk("business-spelling", f"{single} spelled with one s; edXML spells it {name}", element)
            return single
        return name

    def _business(self, b: etree._Element, loc: tuple[str | int, ...]) -> dict[str, Any]:
        self.origins[loc] = b
        strict = self.mode is ParseMode.STRICT
        out: dict[str, Any] = {
            "document_id": self._document_id(b, (*loc, "document_id")),
            "doc_type": self.integer(b, self._spelling(b, "BussinessDocType"), (*loc, "doc_type")),
            "reason": self.text(b, self._spelling(b, "BussinessDocReason"), (*loc, "reason"), required=strict) or "",
        }
        if strict or self.child(b, "Paper") is not None:
            out["paper"] = self.flag(b, "Paper", (*loc, "paper"))
        if (staff := self.child(b, "StaffInfo")) is not None or strict:
            out["staff_info"] = self._staff(
                staff if staff is not None else self.require(b, "StaffInfo"), (*loc, "staff_info")
            )
        if (info := self.child(b, self._spelling(b, "BussinessDocumentInfo"))) is not None:
            iloc = (*loc, "document_info")
            self.origins[iloc] = info
            receivers = []
            receiver_list = self.child(info, "ReceiverList")
            for i, r in enumerate(self.children(receiver_list, "Receiver") if receiver_list is not None else []):
                rloc = (*iloc, "receivers", i)
                self.origins[rloc] = r
                receivers.append(
                    {
                        "organ_id": self.text(r, "OrganId", (*rloc, "organ_id"), token=True),
                        "receiver_type": self.integer(r, "ReceiverType", (*rloc, "receiver_type")),
                    }
                )
            out["document_info"] = {
                "document_info_changed": self.flag(info, "DocumentInfo", (*iloc, "document_info_changed")),
                "receivers_changed": self.flag(info, "DocumentReceiver", (*iloc, "receivers_changed")),
                "receivers": receivers,
            }
        if (rlist := self.child(b, "ReplacementInfoList")) is not None:
            reps = []
            for i, rep in enumerate(self.children(rlist, "ReplacementInfo")):
                rloc = (*loc, "replacements", i)
                self.origins[rloc] = rep
                ids = self.child(rep, "OrganIdList")
                reps.append(
                    {
                        "document_id": self._document_id(rep, (*rloc, "document_id")),
                        "organ_ids": [(o.text or "").strip() for o in self.children(ids, "OrganId")]
                        if ids is not None
                        else [],
                    }
                )
            out["replacements"] = reps
        return {k: v for k, v in out.items() if v is not None}

    def _content_id(self, element: etree._Element, parent: etree._Element, loc: tuple[str | int, ...]) -> str:
        value = self.text(parent, "ContentId", loc, token=True) or ""
        if value and not value.startswith("cid:"):
            self.quirk("cid-prefix", f"ContentId {value!r} has no cid: prefix", self.origins[loc])
        return value.removeprefix("cid:")

    def _attachments(
        self, root: etree._Element, envelope: etree._Element, decoded: dict[etree._Element, DecodedAttachment]
    ) -> list[dict[str, Any]]:
        body = self.require(envelope, "edXMLBody")
        manifest = self.require(body, "edXMLManifest") if body is not None else None
        references = self.children(manifest, "Reference") if manifest is not None else []
        encoded = self.child(root, "AttachmentEncoded")
        files: dict[str, etree._Element] = {}
        for item in self.children(encoded, "Attachment") if encoded is not None else []:
            cid = self._content_id(item, item, ("attachment-file", len(files)))
            if cid in files:
                self.problem(f"two attachments carry ContentId cid:{cid}", item)
            files[cid] = item
        out = []
        for i, ref in enumerate(references):
            loc: tuple[str | int, ...] = ("attachments", i)
            self.origins[loc] = ref
            cid = self._content_id(ref, ref, (*loc, "content_id"))
            carrier = files.get(cid)
            if carrier is None:
                self.problem(f"the manifest lists cid:{cid} but no AttachmentEncoded/Attachment carries it", ref)
                continue
            del files[cid]
            content = decoded.get(carrier)
            if content is None:
                self.problem("attachment has no ContentTransferEncoded", carrier)
                continue
            name = self.text(ref, "AttachmentName", (*loc, "name")) or ""
            ctype = (self.text(ref, "ContentType", (*loc, "content_type"), token=True) or "").lower()
            self._check_item_matches(ref, carrier, name, ctype)
            try:
                safe = sanitize_attachment_name(name)
            except AttachmentError as e:
                self.problem(e.message, self.origins[(*loc, "name")])
                continue
            if safe != name:
                self.quirk(
                    "unsafe-attachment-name",
                    f"attachment name {name!r} is unsafe (path or control characters); it is read as {safe!r}",
                    self.origins[(*loc, "name")],
                )
            if problem := content_type_problem(ctype, content.data):
                self.quirk("content-type-mismatch", f"attachment {safe!r}: {problem}", carrier)
            out.append(
                {
                    "content_id": cid,
                    "name": safe,
                    "content_type": ctype,
                    "description": self.text(
                        ref, "Description", (*loc, "description"), required=self.mode is ParseMode.STRICT
                    )
                    or "",
                    "data": content.data,
                }
            )
        for cid, carrier in files.items():
            self.problem(f"attachment cid:{cid} is not listed in the manifest (edXMLManifest)", carrier)
        return out

    def _check_item_matches(self, ref: etree._Element, item: etree._Element, name: str, ctype: str) -> None:
        # lxml elements without children are falsy: compare with None, never use `or`.
        name_el = self.child(item, "AttachmentName")
        type_el = self.child(item, "ContentType")
        item_name = name if name_el is None else (name_el.text or "")
        item_type = ctype if type_el is None else (type_el.text or "").strip().lower()
        if item_name != name:
            self.quirk(
                "attachment-mismatch",
                f"attachment is named {item_name!r} but the manifest says {name!r}; the manifest is used",
                item,
            )
        if item_type != ctype:
            self.quirk(
                "attachment-mismatch",
                f"attachment is typed {item_type!r} but the manifest says {ctype!r}; the manifest is used",
                item,
            )
