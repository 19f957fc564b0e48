"""The replacements in ``signing._private.pyhanko_speedups`` give what the functions they replace give:
the same objects, the stream left at the same place, the same errors."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from asn1crypto import x509 as asn1_x509
from hypothesis import given, settings
from hypothesis import strategies as st
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader

from node.samples import sample_pdf
from signing._private import pyhanko_speedups
from signing._private.pyhanko_speedups import read_hex_string_from_stream, read_until_delimiter
from signing.keys import load_pem
from signing.pdf import PdfSigningKey, PdfSignOptions, SignatureRole, sign_pdf  # importing it installs them
from tests.signing.fixtures import CaFixture

original_read_hex = pyhanko_speedups._original_read_hex
original_read_until_delimiter = pyhanko_speedups._original_read_until_delimiter
original_get_values = pyhanko_speedups._original_get_values


def _outcome(read: Any, data: bytes) -> tuple[object, ...]:
    stream = io.BytesIO(data)
    try:
        value = read(stream)
    except Exception as e:  # the very point: the same exception, whatever it is
        return ("raised", type(e), str(e))
    return ("read", type(value), value, getattr(value, "autodetected_encoding", None), stream.tell())


def _same(data: bytes) -> None:
    assert _outcome(read_hex_string_from_stream, data) == _outcome(original_read_hex, data), data


def test_installed_once_over_pyhankos_own() -> None:
    assert original_read_hex is not None and original_get_values is not None
    assert generic.read_hex_string_from_stream is read_hex_string_from_stream
    assert original_read_until_delimiter is not None
    assert vars(generic)["read_until_delimiter"] is read_until_delimiter
    assert asn1_x509.RelativeDistinguishedName._get_values is pyhanko_speedups._get_values
    pyhanko_speedups.install()
    assert generic.read_hex_string_from_stream is read_hex_string_from_stream


@pytest.mark.parametrize(
    "data",
    [
        b"<>",
        b"<> rest",
        b"<00>",
        b"<0>",
        b"<abc>",
        b"<ABCDEF0123456789>",
        b"<aBcD>",
        b"<48656c6c6f>/Next 1",
        b"<48 65\n6c\r6c\t6f\f>",
        b"<\x004865\x006c6c6f>",
        b"<  \n >",
        b"<FEFF00480069>",  # a UTF-16 text string, with its byte-order mark
        b"<EFBBBF486921>",  # UTF-8, with its byte-order mark
        b"<ff00ff>",  # not text
        b"<" + b"30" * 40000 + b">",  # longer than the first bulk read
        b"<" + b"ab" * 8191 + b"c>",  # the ">" just past the first read
        b"<" + b"0" * 16383 + b">",
        b"<" + b"0" * 16384 + b">",
        b"<" + b"0" * 16385 + b">",
        b"<48%comment\n65>",  # comments: pyHanko's own function reads them
        b"<48 % comment with > inside\n65>",
        b"<4g>",  # not hex: the same error
        b"<48<65>",
        b"<48\x0b65>",  # vertical tab is not PDF whitespace
        b"<48\xff>",
        b"<4865",  # the stream ends first
        b"<",
        b"",
        b"<48 65 ",
        b"<" + b"0" * 50000,
    ],
)
def test_hex_strings_read_as_pyhanko_reads_them(data: bytes) -> None:
    _same(data)


_ALPHABET = st.sampled_from([*b"0123456789abcdefABCDEF", *b" \n\r\t\f\x00", *b"%>g<\x0b\xff/"])


@settings(max_examples=400, deadline=None)
@given(st.lists(_ALPHABET, max_size=60).map(bytes), st.binary(max_size=8))
def test_any_hex_string_reads_as_pyhanko_reads_it(body: bytes, tail: bytes) -> None:
    _same(b"<" + body + tail)
    _same(b"<" + body + b">" + tail)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_hex_of_any_bytes_reads_back_as_pyhanko_reads_it(value: bytes) -> None:
    _same(b"<" + value.hex().encode() + b">")
    _same(b"<" + value.hex().upper().encode() + b">")


def test_every_object_of_a_signed_pdf_reads_as_before(test_ca: CaFixture) -> None:
    key = PdfSigningKey(load_pem(test_ca.rsa.key_path, test_ca.rsa.cert_path, test_ca.chain_path))
    signed = sign_pdf(sample_pdf("Hex", size=20_000), key, PdfSignOptions(role=SignatureRole.SIGNER))
    pdf = sign_pdf(signed, key, PdfSignOptions(role=SignatureRole.ORGANISATION))

    def objects(hex_reader: Any, token_reader: Any) -> list[str]:
        generic.read_hex_string_from_stream = hex_reader
        vars(generic)["read_until_delimiter"] = token_reader
        try:
            reader = PdfFileReader(io.BytesIO(pdf), strict=False)
            size = int(reader.trailer["/Size"])
            found = (reader.get_object(generic.Reference(i, 0, reader)) for i in range(1, size))  # type: ignore[no-untyped-call]
            return [re.sub(r" at 0x[0-9a-f]+", "", repr(o)) for o in found]
        finally:
            generic.read_hex_string_from_stream = read_hex_string_from_stream
            vars(generic)["read_until_delimiter"] = read_until_delimiter

    fast = objects(read_hex_string_from_stream, read_until_delimiter)
    assert fast == objects(original_read_hex, original_read_until_delimiter)
    assert sum(o.startswith("{") and "/ByteRange" in o for o in fast) == 2  # both signatures' dictionaries


# --- tokens up to the next delimiter ----------------------------------------------------------------------


def _delimited(read: Any, data: bytes, start: int) -> tuple[object, ...]:
    stream = io.BytesIO(data)
    stream.seek(start)
    return (read(stream), stream.tell())


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"Type",
        b"Type/Font",
        b"Type /Font",
        b"BaseFont/ABCDEF+LiberationSerif>>",
        b"a#20b(c)",
        b"x" * 63 + b" ",
        b"x" * 64 + b" ",
        b"x" * 65 + b"/",
        b"x" * 500,
        b"x" * 64,
        b"Tj\n",
        b"q\x00Q",
        b"abc\x0bdef]",  # a vertical tab is not PDF whitespace
        b"\xff\xfe%comment",
    ],
)
def test_tokens_end_where_pyhanko_ends_them(data: bytes) -> None:
    for start in range(min(len(data), 3) + 1):
        assert _delimited(read_until_delimiter, data, start) == _delimited(original_read_until_delimiter, data, start)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=300))
def test_any_token_ends_where_pyhanko_ends_it(data: bytes, start: int) -> None:
    start = min(start, len(data))
    assert _delimited(read_until_delimiter, data, start) == _delimited(original_read_until_delimiter, data, start)


# --- prepared name values -------------------------------------------------------------------------------


def _names() -> list[asn1_x509.Name]:
    plain = [
        {"country_name": "VN", "organization_name": "Sở Tài chính", "common_name": "Sở Tài chính tỉnh Nghệ An"},
        {"country_name": "VN", "organization_name": "SỞ TÀI CHÍNH", "common_name": "sở   tài chính TỈNH nghệ an"},
        {"common_name": "  Leading and trailing  "},
        {"common_name": "Ligature \ufb01 and width \uff21"},  # NFKC folds these
        {"common_name": "Soft\u00adhyphen"},
        {"common_name": "Liên thông Root CA", "user_id": "000.01.41.H41"},
        {"email_address": "van.thu@example.gov.vn", "common_name": "Văn thư"},
    ]
    names = [asn1_x509.Name.build(n) for n in plain]
    names.append(asn1_x509.Name.build({"common_name": "Printable"}, use_printable=True))
    return names


def _fresh(name: asn1_x509.Name) -> asn1_x509.Name:
    return asn1_x509.Name.load(name.dump())


@pytest.mark.parametrize("repeat", [1, 2])
def test_prepared_values_equal_asn1cryptos(repeat: int) -> None:
    pyhanko_speedups._RDN_VALUES.clear()
    for _ in range(repeat):
        for name in _names():
            for rdn in _fresh(name).chosen:
                memo = rdn._get_values(rdn)
                assert memo == original_get_values(rdn, _fresh_rdn(rdn))  # type: ignore[misc]
                memo["mutated"] = "x"  # each caller gets its own copy
                assert "mutated" not in rdn._get_values(rdn)


def _fresh_rdn(rdn: asn1_x509.RelativeDistinguishedName) -> asn1_x509.RelativeDistinguishedName:
    return asn1_x509.RelativeDistinguishedName.load(rdn.dump())


def test_names_compare_and_hash_as_before() -> None:
    names = _names()
    expected: list[tuple[bool, str]] = []
    cls = asn1_x509.RelativeDistinguishedName
    cls._get_values = original_get_values
    try:
        for a in names:
            for b in names:
                expected.append((_fresh(a) == _fresh(b), _fresh(a).hashable))
    finally:
        cls._get_values = pyhanko_speedups._get_values
    pyhanko_speedups._RDN_VALUES.clear()
    for _ in range(2):  # remembered, then from memory
        got = [(_fresh(a) == _fresh(b), _fresh(a).hashable) for a in names for b in names]
        assert got == expected
    assert _fresh(names[0]) == _fresh(names[1])  # case and inner spaces are folded by the preparation
    assert {same for same, _ in expected} == {True, False}


def test_a_prohibited_code_point_raises_every_time() -> None:
    name = asn1_x509.Name.build({"common_name": "unassigned \U000e0fff"})
    for _ in range(2):
        with pytest.raises(ValueError, match="unassigned code points"):
            _ = name.hashable
