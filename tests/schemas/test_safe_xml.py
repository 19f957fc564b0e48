"""Safe XML reading: bombs, XXE and external references are refused fast, cheaply and without I/O.

Issue requirements covered here:

* every XML bomb / XXE / external-entity sample of the corpus is refused in under 1 s, with bounded
  memory, and nothing is fetched or read from disk;
* no DTDs, no entity expansion, no network or file access, limits on bytes, depth and element count;
* errors say what and where (line, element).

"Nothing is fetched" is observed with a real HTTP server on 127.0.0.1 that records every request;
"nothing is read from disk" with a named pipe (FIFO) as the ``file://`` target: whoever opens it for
reading is seen by a watcher thread, which then writes a secret so that a leak would also show up.
Both harnesses are checked against a deliberately unsafe parser so that they are known to be able to fail.
"""

from __future__ import annotations

import errno
import functools
import http.server
import io
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from lxml import etree

from node.samples import sample_monthly_report
from schemas import (
    EdxmlError,
    InvalidEdxmlError,
    ParseLimits,
    ParseMode,
    UnreadableXmlError,
    UnsafeXmlError,
    build_message,
    parse_message,
)
from tests.conftest import REPO, require

MODES = [pytest.param(ParseMode.STRICT, id="strict"), pytest.param(ParseMode.TOLERANT, id="tolerant")]
TIME_LIMIT = 1.0  # seconds, per refused document (issue requirement)
MEMORY_LIMIT = 20 * 1024 * 1024  # extra bytes a refused bomb may cost

# --- the corpus ---------------------------------------------------------------------------------------

DEFUSEDXML = "defusedxml/xmltestdata"
PYHANKO_BAD_XML = "pyHanko/internal/common-test-utils/src/pyhanko_testing_commons/test_data/data/xml/bad-xml"
SIGNXML = "signxml/test/defusedxml-test-data"
CORPUS_DIRS = (DEFUSEDXML, PYHANKO_BAD_XML, SIGNXML)

_DOCTYPE_FILES = ("cyclic.xml", "dtd.xml", "external.xml", "external_file.xml", "quadratic.xml")
_DOCTYPE_FILES += ("xmlbomb.xml", "xmlbomb2.xml")
_BENIGN = ("simple.xml", "simple-ns.xml")

# file (relative to the corpus) -> the error parse_message must raise. Every file of the three
# directories is listed (see test_the_table_covers_every_corpus_file): bombs and XXE carry a DOCTYPE and
# are refused as unsafe; the benign controls are well-formed XML that is simply not edXML.
CORPUS_TABLE: dict[str, type[EdxmlError]] = {
    **{f"{DEFUSEDXML}/{name}": UnsafeXmlError for name in (*_DOCTYPE_FILES, "dtd_element.xml")},
    **{f"{DEFUSEDXML}/{name}": InvalidEdxmlError for name in _BENIGN},
    # XSLT / XSD abuse samples: never executed or imported, just "not edXML".
    **{f"{DEFUSEDXML}/{name}": InvalidEdxmlError for name in ("xalan_exec.xsl", "xalan_write.xsl")},
    f"{DEFUSEDXML}/schema-include.xsd": InvalidEdxmlError,
    **{f"{PYHANKO_BAD_XML}/{name}": UnsafeXmlError for name in (*_DOCTYPE_FILES, "xmp-with-harmless-entity.xml")},
    **{f"{PYHANKO_BAD_XML}/{name}": InvalidEdxmlError for name in _BENIGN},
    f"{PYHANKO_BAD_XML}/SOURCE": UnreadableXmlError,  # a plain-text note: not XML at all
    **{f"{SIGNXML}/{name}": UnsafeXmlError for name in _DOCTYPE_FILES},
    **{f"{SIGNXML}/{name}": InvalidEdxmlError for name in _BENIGN},
}
CORPUS_BOMBS = sorted(name for name, error in CORPUS_TABLE.items() if error is UnsafeXmlError)


def test_the_table_covers_every_corpus_file(corpus: Path) -> None:
    on_disk = {str(p.relative_to(corpus)) for d in CORPUS_DIRS for p in (corpus / d).iterdir() if p.is_file()}
    assert on_disk == set(CORPUS_TABLE), "corpus and CORPUS_TABLE differ: classify the new/removed files"


def _refuse(source: object, mode: ParseMode, expected: type[EdxmlError], **kw: object) -> tuple[EdxmlError, float]:
    start = time.perf_counter()
    with pytest.raises(expected) as info:
        parse_message(source, mode=mode, **kw)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - start
    return info.value, elapsed


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("as_path", [pytest.param(False, id="bytes"), pytest.param(True, id="path")])
@pytest.mark.parametrize("name", sorted(CORPUS_TABLE))
def test_corpus_file_is_refused_quickly(corpus: Path, name: str, as_path: bool, mode: ParseMode) -> None:
    path = corpus / name
    expected = CORPUS_TABLE[name]
    error, elapsed = _refuse(path if as_path else path.read_bytes(), mode, expected)
    assert elapsed < TIME_LIMIT, f"{name} took {elapsed:.3f} s to refuse"
    if expected is UnsafeXmlError:
        # Refused by the prolog check, pointing at the DOCTYPE's line, before libxml2 parses any of it.
        assert "DOCTYPE" in error.message
        assert error.location is not None
        doctype_line = path.read_bytes().split(b"<!DOCTYPE")[0].count(b"\n") + 1
        assert error.location.line == doctype_line
    elif expected is InvalidEdxmlError:
        assert "not edXML" in error.message
        assert error.location is not None and error.location.line is not None
    else:
        assert type(error) is UnreadableXmlError


# --- our own bombs ------------------------------------------------------------------------------------


@functools.cache
def sample_bytes() -> bytes:
    return build_message(sample_monthly_report())


def with_doctype(doctype: bytes, *, use: bytes = b"", body: bytes | None = None) -> bytes:
    """The sample message with ``doctype`` after its XML declaration and ``use`` at the start of Subject."""
    decl, rest = (body or sample_bytes()).split(b"\n", 1)
    rest = rest.replace(b"<edXML:Subject>", b"<edXML:Subject>" + use, 1)
    return decl + b"\n" + doctype + b"\n" + rest


def _generated_bombs() -> dict[str, bytes]:
    lol = [b'<!ENTITY lol0 "lol">']
    lol += [b'<!ENTITY lol%d "%s">' % (i, b"&lol%d;" % (i - 1) * 10) for i in range(1, 10)]
    billion = b"<!DOCTYPE edXML [\n" + b"\n".join(lol) + b"\n]>"
    quadratic = b'<!DOCTYPE edXML [<!ENTITY a "' + b"A" * 100_000 + b'">]>'
    param = b"<!DOCTYPE edXML [<!ENTITY % a \"<!ENTITY b 'x'>\"> %a; " + b"%a; " * 10_000 + b"]>"
    return {
        "billion-laughs.xml": with_doctype(billion, use=b"&lol9;"),
        "quadratic-blowup.xml": with_doctype(quadratic, use=b"&a;" * 20_000),
        "parameter-entities.xml": with_doctype(param, use=b"&b;"),
        "billion-laughs-bare.xml": billion + b"\n<edXML>&lol9;</edXML>",
    }


GENERATED_BOMBS = sorted(_generated_bombs())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", GENERATED_BOMBS)
def test_generated_bomb_is_refused_quickly(name: str, mode: ParseMode) -> None:
    error, elapsed = _refuse(_generated_bombs()[name], mode, UnsafeXmlError)
    assert elapsed < TIME_LIMIT
    assert "DOCTYPE" in error.message


_MEMORY_PROBE = r"""
import json, re, sys, tracemalloc
from schemas import EdxmlError, ParseMode, parse_message

def status(key):
    return int(re.search(key + r":\s+(\d+) kB", open("/proc/self/status").read())[1]) * 1024

def growth(call):
    # Peak RSS of this process only (ru_maxrss would carry the parent's peak across exec): reset the
    # high-water mark, then compare it with the resident size before the call.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status("VmRSS")
    result = call()
    return status("VmHWM") - before, result

def refuse_all(path, data):
    errors = []
    for mode in ParseMode:
        for src in (path, data):
            try:
                parse_message(src, mode=mode)
                errors.append(None)
            except EdxmlError as e:
                errors.append(type(e).__name__)
    return errors

paths = sys.argv[1:]
refuse_all(paths[0], open(paths[0], "rb").read())  # warm up: imports, lazily built state
out = {}
for path in paths:
    data = open(path, "rb").read()
    tracemalloc.start()
    rss_growth, errors = growth(lambda: refuse_all(path, data))
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out[path] = {"rss_growth": rss_growth, "py_peak": py_peak, "errors": errors}
out["control"] = {"rss_growth": growth(lambda: len(b"\x01" * (64 << 20)))[0]}  # the probe sees this
print(json.dumps(out))
"""


def test_bombs_cost_bounded_memory(corpus: Path, tmp_path: Path) -> None:
    require(os.access("/proc/self/clear_refs", os.W_OK), "peak-RSS probe needs Linux /proc/self/clear_refs")
    paths = [str(corpus / name) for name in CORPUS_BOMBS]
    for name, data in _generated_bombs().items():
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    run = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, *paths], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    control = report.pop("control")
    assert control["rss_growth"] > 32 * 1024 * 1024, "the probe cannot see allocations; the check below is moot"
    assert set(report) == set(paths)
    for path, seen in report.items():
        assert seen["errors"] == ["UnsafeXmlError"] * 4, path
        assert seen["rss_growth"] < MEMORY_LIMIT, f"{path}: peak RSS grew by {seen['rss_growth']} bytes"
        assert seen["py_peak"] < MEMORY_LIMIT, f"{path}: {seen['py_peak']} bytes allocated"


# --- nothing fetched, nothing read -------------------------------------------------------------------


@dataclass
class RecordingServer:
    base: str
    secret: str
    requests: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"{self.base}/{path}"


@pytest.fixture(scope="module")
def _http_server() -> Iterator[RecordingServer]:
    secret = f"HTTP-CANARY-{uuid.uuid4().hex}"
    recorder = RecordingServer(base="", secret=secret)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            recorder.requests.append(self.path)
            body = f'<!ENTITY leak "{secret}"><!ENTITY % inner "{secret}">'.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/xml-dtd")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            self.do_GET()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    recorder.base = f"http://{host!s}:{port}"
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def http_canary(_http_server: RecordingServer) -> RecordingServer:
    """An HTTP server on 127.0.0.1 that records every request and answers with DTD text holding a secret."""
    _http_server.requests.clear()
    return _http_server


@dataclass
class FileCanary:
    path: Path
    secret: str
    opened: list[float]

    @property
    def uri(self) -> str:
        return self.path.as_uri()


@pytest.fixture(scope="module")
def _fifo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileCanary]:
    fifo = tmp_path_factory.mktemp("canary") / "canary-secret.txt"
    os.mkfifo(fifo)
    canary = FileCanary(fifo, f"FILE-CANARY-{uuid.uuid4().hex}", [])
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO while nobody reads
            except OSError as e:
                if e.errno != errno.ENXIO:
                    raise
                time.sleep(0.001)
                continue
            canary.opened.append(time.time())
            try:
                os.write(fd, canary.secret.encode())
            finally:
                os.close(fd)
            # Let that reader see end of file before anyone else may open the pipe again.
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield canary
    finally:
        stop.set()
        thread.join(timeout=5)


@pytest.fixture
def file_canary(_fifo: FileCanary) -> FileCanary:
    """A FIFO whose every opening for reading is recorded (and answered with a secret)."""
    _fifo.opened.clear()
    return _fifo


def test_the_harnesses_see_fetches_and_reads(http_canary: RecordingServer, file_canary: FileCanary) -> None:
    """The I/O assertions below can fail: a careless reader is caught by both harnesses."""
    with urllib.request.urlopen(http_canary.url("probe"), timeout=5) as response:
        assert http_canary.secret.encode() in response.read()
    assert http_canary.requests == ["/probe"]
    unsafe = etree.XMLParser(load_dtd=True, resolve_entities=True, no_network=False)
    doc = f'<!DOCTYPE r [<!ENTITY e SYSTEM "{file_canary.uri}">]><r>&e;</r>'.encode()
    root = etree.fromstring(doc, unsafe)
    assert root.text == file_canary.secret
    assert len(file_canary.opened) == 1


def _xxe_documents(server: RecordingServer, canary: FileCanary) -> dict[str, tuple[bytes, ParseMode | None]]:
    """name -> (document, the only mode it applies to or None for both)."""
    http, file = server.url, canary.uri
    bare_file_entity = f'<!DOCTYPE r [<!ENTITY e SYSTEM "{file}">]>\n<r>&e;</r>'.encode()
    return {
        "external-entity-http": (
            with_doctype(f'<!DOCTYPE edXML [<!ENTITY x SYSTEM "{http("e")}">]>'.encode(), use=b"&x;"),
            None,
        ),
        "external-entity-file": (
            with_doctype(f'<!DOCTYPE edXML [<!ENTITY x SYSTEM "{file}">]>'.encode(), use=b"&x;"),
            None,
        ),
        "external-entity-bare-path": (
            with_doctype(f'<!DOCTYPE edXML [<!ENTITY x SYSTEM "{canary.path}">]>'.encode(), use=b"&x;"),
            None,
        ),
        "entity-in-attribute": (
            with_doctype(f'<!DOCTYPE edXML [<!ENTITY x SYSTEM "{file}">]>'.encode()).replace(
                b"<edXML:Subject>", b'<edXML:Subject a="&x;">', 1
            ),
            None,
        ),
        "external-dtd-system": (
            with_doctype(f'<!DOCTYPE edXML SYSTEM "{http("evil.dtd")}">'.encode(), use=b"&leak;"),
            None,
        ),
        "external-dtd-public": (
            with_doctype(
                f'<!DOCTYPE edXML PUBLIC "-//EVIL//DTD X//EN" "{http("public.dtd")}">'.encode(), use=b"&leak;"
            ),
            None,
        ),
        "external-dtd-file": (with_doctype(f'<!DOCTYPE edXML SYSTEM "{file}">'.encode()), None),
        "parameter-entity-http": (
            with_doctype(f'<!DOCTYPE edXML [<!ENTITY % p SYSTEM "{http("p.dtd")}"> %p;]>'.encode(), use=b"&leak;"),
            None,
        ),
        "out-of-band-exfiltration": (
            with_doctype(
                f'<!DOCTYPE edXML [<!ENTITY % f SYSTEM "{file}"><!ENTITY % d SYSTEM "{http("oob.dtd")}"> %d;]>'.encode()
            ),
            None,
        ),
        "lowercase-doctype": (bare_file_entity.replace(b"<!DOCTYPE", b"<!doctype"), None),
        "mixed-case-doctype": (bare_file_entity.replace(b"<!DOCTYPE", b"<!DocType"), None),
        "bom-before-doctype": (b"\xef\xbb\xbf" + bare_file_entity, None),
        "doctype-after-comment-and-pi": (
            b"<?xml version='1.0' encoding='UTF-8'?>\n<!--"
            + b" padding " * 1000
            + b"-->\n<?pi x?>\n"
            + bare_file_entity,
            None,
        ),
        "stray-bytes-before-declaration": (
            b"\x00\x00junk\r\n" + with_doctype(f'<!DOCTYPE edXML [<!ENTITY x SYSTEM "{file}">]>'.encode(), use=b"&x;"),
            ParseMode.TOLERANT,
        ),
        # The DTD sits in the stray prefix that tolerant mode skips: it must not come back to life.
        "doctype-hidden-in-stray-prefix": (
            f'junk <!DOCTYPE edXML [<!ENTITY x SYSTEM "{file}">]>\n'.encode() + with_doctype(b"", use=b"&x;"),
            ParseMode.TOLERANT,
        ),
    }


_XXE_NAMES = [
    "external-entity-http",
    "external-entity-file",
    "external-entity-bare-path",
    "entity-in-attribute",
    "external-dtd-system",
    "external-dtd-public",
    "external-dtd-file",
    "parameter-entity-http",
    "out-of-band-exfiltration",
    "lowercase-doctype",
    "mixed-case-doctype",
    "bom-before-doctype",
    "doctype-after-comment-and-pi",
    "stray-bytes-before-declaration",
    "doctype-hidden-in-stray-prefix",
]


def test_xxe_names_match_the_documents(http_canary: RecordingServer, file_canary: FileCanary) -> None:
    assert sorted(_xxe_documents(http_canary, file_canary)) == sorted(_XXE_NAMES)


@pytest.mark.parametrize("source_kind", ["bytes", "path", "stream"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", _XXE_NAMES)
def test_xxe_is_refused_without_io(
    name: str,
    mode: ParseMode,
    source_kind: str,
    tmp_path: Path,
    http_canary: RecordingServer,
    file_canary: FileCanary,
) -> None:
    document, only_mode = _xxe_documents(http_canary, file_canary)[name]
    path = tmp_path / f"{name}.xml"
    path.write_bytes(document)
    source: object = {"bytes": document, "path": path, "stream": io.BytesIO(document)}[source_kind]
    # Strict mode refuses stray bytes before the DTD is even looked at; either way nothing is read.
    expected = UnsafeXmlError if only_mode in (None, mode) else UnreadableXmlError
    error, elapsed = _refuse(source, mode, expected)
    assert elapsed < TIME_LIMIT
    assert http_canary.requests == []
    assert file_canary.opened == []
    for secret in (http_canary.secret, file_canary.secret):
        assert secret not in str(error)
        assert secret not in repr(getattr(error, "problems", ()))
    if only_mode in (None, mode):
        said = error.message.lower()
        assert "doctype" in said or "markup declaration" in said or "entity" in said


def _parsed_text(parsed: object) -> str:
    message = parsed.message  # type: ignore[attr-defined]
    return repr(message.model_dump()) + repr(parsed.warnings)  # type: ignore[attr-defined]


def test_xinclude_is_not_processed(tmp_path: Path, http_canary: RecordingServer, file_canary: FileCanary) -> None:
    xi = (
        f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{http_canary.url("xi.xml")}" parse="text"/>'
        f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{file_canary.uri}" parse="text"/>'
    ).encode()
    document = sample_bytes().replace(b"</edXML:ToPlaces>", b"</edXML:ToPlaces>" + xi, 1)
    # Strict: our XSD has no place for XInclude; the error names the foreign element.
    with pytest.raises(InvalidEdxmlError, match="xi:include") as info:
        parse_message(document)
    # Tolerant: unknown foreign elements are ignored, not resolved.
    parsed = parse_message(document, mode=ParseMode.TOLERANT)
    assert parsed.message.header.subject == parse_message(sample_bytes()).message.header.subject  # type: ignore[union-attr]
    assert http_canary.requests == []
    assert file_canary.opened == []
    for secret in (http_canary.secret, file_canary.secret):
        assert secret not in str(info.value)
        assert secret not in _parsed_text(parsed)


@pytest.mark.parametrize("mode", MODES)
def test_schema_location_hints_are_not_followed(
    mode: ParseMode, http_canary: RecordingServer, file_canary: FileCanary
) -> None:
    hints = (
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:ev="urn:evil" xmlns:ev2="urn:evil2" '
        f'xsi:schemaLocation="http://www.mic.gov.vn/TBT/QCVN_102_2016 {http_canary.url("edxml.xsd")} '
        f'urn:evil {http_canary.url("evil.xsd")} urn:evil2 {file_canary.uri}" '
        f'xsi:noNamespaceSchemaLocation="{http_canary.url("nons.xsd")}"'
    ).encode()
    document = sample_bytes().replace(b"<edXML xmlns=", b"<edXML " + hints + b" xmlns=", 1)
    parsed = parse_message(document, mode=mode)  # valid otherwise: the hints are ignored, not refused
    assert parsed.message.header.document_id == "000.01.41.H41,2026/11/16,245/BC-STC"  # type: ignore[union-attr]
    # With elements of the hinted namespaces present, strict validation still uses only our XSD.
    foreign = b"</edXML:ToPlaces><ev:x>1</ev:x><ev2:x>abc</ev2:x>"
    with_foreign = document.replace(b"</edXML:ToPlaces>", foreign, 1)
    if mode is ParseMode.STRICT:
        with pytest.raises(InvalidEdxmlError, match="Unexpected child"):
            parse_message(with_foreign, mode=mode)
    else:
        assert secret_free(parse_message(with_foreign, mode=mode), http_canary, file_canary)
    assert http_canary.requests == []
    assert file_canary.opened == []
    assert secret_free(parsed, http_canary, file_canary)


def secret_free(parsed: object, server: RecordingServer, canary: FileCanary) -> bool:
    text = _parsed_text(parsed)
    return server.secret not in text and canary.secret not in text


# --- the prolog -------------------------------------------------------------------------------------


def test_valid_sample_is_accepted_from_every_kind_of_source(tmp_path: Path) -> None:
    """The positive control for everything above: refusals are about the attack, not the source."""
    data = sample_bytes()
    path = tmp_path / "ok.edxml"
    path.write_bytes(data)
    for mode in ParseMode:
        for source in (data, bytearray(data), memoryview(data), io.BytesIO(data), path, str(path)):
            parsed = parse_message(source, mode=mode)  # type: ignore[arg-type]
            assert parsed.warnings == ()
            assert parsed.message.header.from_.organ_id == "000.01.41.H41"  # type: ignore[union-attr]


def test_bom_comments_and_pis_before_the_root_are_fine() -> None:
    decl, rest = sample_bytes().split(b"\n", 1)
    document = b"\xef\xbb\xbf" + decl + b"\n<!-- <!DOCTYPE x> in a comment is text -->\n<?app hint?>\n" + rest
    for mode in ParseMode:
        assert parse_message(document, mode=mode).message.header.document_id  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", MODES)
def test_doctype_after_a_long_comment_is_refused_at_its_line(mode: ParseMode) -> None:
    comment = b"<!--\n" + b"x" * 60 + (b"\n" + b"y" * 60) * 500 + b"\n-->\n"  # ~30 KB, 503 lines
    document = with_doctype(comment + b"<!DOCTYPE edXML>")
    error, _ = _refuse(document, mode, UnsafeXmlError)
    assert error.location is not None
    assert error.location.line == document.split(b"<!DOCTYPE")[0].count(b"\n") + 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("as_stream", [False, True])
def test_doctype_after_a_prolog_too_long_to_inspect_is_refused(mode: ParseMode, as_stream: bool) -> None:
    comment = b"<!--" + b"z" * 100_000 + b"-->"
    document = with_doctype(comment + b'<!DOCTYPE edXML [<!ENTITY x "boom">]>', use=b"&x;")
    _, elapsed = _refuse(io.BytesIO(document) if as_stream else document, mode, UnreadableXmlError)
    assert elapsed < TIME_LIMIT


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "prolog",
    [
        pytest.param(b"<!ENTITY x 'y'>\n", id="entity-without-doctype"),
        pytest.param(b"<!ELEMENT edXML ANY>\n", id="element-declaration"),
        pytest.param(b"<![CDATA[x]]>\n", id="cdata-before-root"),
    ],
)
def test_other_markup_declarations_before_the_root_are_refused(mode: ParseMode, prolog: bytes) -> None:
    error, _ = _refuse(with_doctype(prolog.rstrip(b"\n")), mode, UnsafeXmlError)
    assert "not allowed" in error.message


# --- limits -----------------------------------------------------------------------------------------


def _nested(depth: int) -> bytes:
    return b"<?xml version='1.0'?>\n<edXML>\n" + b"<a>" * depth + b"x" + b"</a>" * depth + b"\n</edXML>\n"


@pytest.mark.parametrize("mode", MODES)
def test_depth_over_the_limit_is_refused(mode: ParseMode) -> None:
    error, _ = _refuse(_nested(20), mode, UnsafeXmlError, limits=ParseLimits(max_depth=10))
    assert "nest deeper than 10 levels" in error.message
    assert error.location is not None and error.location.line == 3
    # Exactly at the limit it is not a depth problem any more (just not edXML).
    _refuse(_nested(9), mode, InvalidEdxmlError, limits=ParseLimits(max_depth=10))


def test_very_deep_nesting_is_refused_quickly_with_default_limits() -> None:
    error, elapsed = _refuse(_nested(200_000), ParseMode.TOLERANT, UnsafeXmlError)
    assert elapsed < TIME_LIMIT
    assert f"nest deeper than {ParseLimits().max_depth} levels" in error.message


@pytest.mark.parametrize("mode", MODES)
def test_element_count_over_the_limit_is_refused(mode: ParseMode) -> None:
    document = b"<edXML>\n" + b"<a/>\n" * 50 + b"</edXML>"
    error, _ = _refuse(document, mode, UnsafeXmlError, limits=ParseLimits(max_elements=30))
    assert "more than 30 elements" in error.message
    assert error.location is not None and error.location.line == 31  # the 31st element
    _refuse(document, mode, InvalidEdxmlError, limits=ParseLimits(max_elements=51))


def test_element_count_of_the_sample_against_the_limit() -> None:
    count = sum(1 for _ in etree.fromstring(sample_bytes()).iter())
    assert parse_message(sample_bytes(), limits=ParseLimits(max_elements=count)).message
    error, _ = _refuse(sample_bytes(), ParseMode.STRICT, UnsafeXmlError, limits=ParseLimits(max_elements=count - 1))
    assert f"more than {count - 1} elements" in error.message


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("source_kind", ["bytes", "stream", "path"])
def test_size_over_the_limit_is_refused(mode: ParseMode, source_kind: str, tmp_path: Path) -> None:
    data = sample_bytes()
    path = tmp_path / "m.edxml"
    path.write_bytes(data)

    def source() -> object:
        return {"bytes": data, "stream": io.BytesIO(data), "path": path}[source_kind]

    for limit in (len(data) - 1, 1000, 10):
        error, _ = _refuse(source(), mode, UnsafeXmlError, limits=ParseLimits(max_bytes=limit))
        assert f"limit of {limit} bytes" in error.message or f"the limit is {limit}" in error.message
    assert parse_message(source(), mode=mode, limits=ParseLimits(max_bytes=len(data))).message  # type: ignore[arg-type]


def test_size_limit_stops_reading_a_stream_early() -> None:
    class Endless(io.RawIOBase):
        """A stream that never ends: only a limit that counts as it reads can stop it."""

        def __init__(self) -> None:
            self.served = 0
            self.head = sample_bytes().split(b"<edXML:Subject>")[0] + b"<edXML:Subject>"

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            chunk = self.head[: len(buffer)] if self.head else b"x" * len(buffer)
            self.head = self.head[len(chunk) :]
            buffer[: len(chunk)] = chunk
            self.served += len(chunk)
            return len(chunk)

    stream = Endless()
    error, elapsed = _refuse(
        io.BufferedReader(stream), ParseMode.STRICT, UnsafeXmlError, limits=ParseLimits(max_bytes=3_000_000)
    )
    assert "limit of 3000000 bytes" in error.message
    assert elapsed < TIME_LIMIT
    assert stream.served < 3_000_000 + 2 * 1024 * 1024


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("document", "line"),
    [
        pytest.param(b"<edXML>\n<a>&foo;</a>\n</edXML>", 2, id="in-text"),
        pytest.param(b"<edXML>\n\n<a b='&foo;'/>\n</edXML>", 3, id="in-attribute"),
        pytest.param(b"<edXML>\n<a>&nbsp;</a>\n</edXML>", 2, id="html-entity"),
    ],
)
def test_entity_reference_without_a_dtd_is_refused(mode: ParseMode, document: bytes, line: int) -> None:
    error, _ = _refuse(document, mode, UnsafeXmlError)
    assert "entity references are not allowed" in error.message
    assert error.location is not None and error.location.line == line


def test_predefined_and_character_references_are_fine() -> None:
    document = sample_bytes().replace(b"<edXML:Subject>", b"<edXML:Subject>&amp;&lt;&#x1EA0;&#7841; ", 1)
    subject = parse_message(document).message.header.subject  # type: ignore[union-attr]
    assert subject.startswith("&<Ạạ ")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("document", "line"),
    [
        pytest.param(b"<edXML>\n<a>\n<b>\n</a>\n</edXML>", 4, id="tag-mismatch"),
        pytest.param(b"<?xml version='1.0'?>\n<edXML>\n<a>", 3, id="truncated"),
        pytest.param(b"<edXML>\n\n\n<a x='1' x='2'/></edXML>", 4, id="duplicate-attribute"),
        pytest.param(b"<edXML>\n<a>\x01</a></edXML>", 2, id="control-character"),
    ],
)
def test_not_well_formed_xml_says_where(mode: ParseMode, document: bytes, line: int) -> None:
    error, _ = _refuse(document, mode, UnreadableXmlError)
    assert type(error) is UnreadableXmlError
    assert error.message.startswith("not well-formed XML: ")
    assert error.location is not None and error.location.line == line


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"   \n ", id="blank"),
        pytest.param(b"%PDF-1.7 not xml", id="pdf"),
        pytest.param(b"\xff\xfe<\x00e\x00/\x00>\x00", id="utf-16"),
        pytest.param(b"<?xml version='1.0' encoding='ISO-8859-1'?><edXML/>", id="latin-1"),
    ],
)
def test_not_xml_is_unreadable(document: bytes) -> None:
    error, _ = _refuse(document, ParseMode.TOLERANT, UnreadableXmlError)
    assert type(error) is UnreadableXmlError


# --- error locations in valid XML -------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_invalid_field_is_reported_at_its_line_and_path(mode: ParseMode) -> None:
    data = sample_bytes()
    marker = b"<edXML:OrganId>000.01.41.H41</edXML:OrganId>"  # the first is From's
    broken = data.replace(marker, b"<edXML:OrganId>abc</edXML:OrganId>", 1)
    line = data[: data.index(marker)].count(b"\n") + 1
    error, _ = _refuse(broken, mode, InvalidEdxmlError)
    assert error.location is not None
    assert error.location.line == line
    assert error.location.path.endswith("/From/OrganId")
    assert error.location.path == "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/From/OrganId"
    assert f"line {line}, " in str(error)
