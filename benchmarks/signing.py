"""Signing throughput: the envelope signature (XAdES) and PAdES, next to the raw primitives they sit on.

A throwaway PKI is made in a temporary directory (Root CA → Issuing CA → an RSA-2048 organisation
certificate carrying the organ code 000.01.41.H41); the key is loaded once with ``signing.keys.load_pem``
and the trust store is built once (``allow_fetching=False``), so "verify" means full path validation with
the trust data cached, as a running node does it. The message is
:func:`node.samples.sample_monthly_report` with a 100 KB PDF, built with ``schemas.build_message``.

Measured in one run, each next to what it is compared with:

* raw RSA-2048 signatures with ``cryptography`` (PKCS#1 v1.5, SHA-256, over a real SignedInfo), envelope
  ``sign_envelope`` and ``verify_envelope``;
* PAdES ``sign_pdf`` with the organisation seal (the common case), the electronic-copy stamp (text only)
  and the signer's image; ``verify_pdf`` of the organisation seal alone and of what the exchange sends
  (the signer's signature, then the organisation seal in a later revision:
  ``pades_verifies_two_signatures_per_s``); and the naive loop a first integration writes: each time
  ``SimpleSigner.load`` (key and certificate files) then plain ``pyhanko.sign.signers.sign_pdf``, invisible.

Each operation is warmed up, then timed call by call, interleaved with its peers (round after round,
rotating the order) so all see the same machine conditions. A group runs for ``--seconds`` per operation
and at least ``--min-iterations`` rounds. Rates come from the median call (``*_best`` keys: the fastest
call); ``*_vs_*`` ratios are median time of the baseline / median time of ours. Targets: envelope signing
at >= 50 % of raw RSA signs/s, PAdES (organisation seal) at >= 10x the naive loop; ``*_target_met`` says
whether each was reached in this run (``pades_invisible_*``: the electronic-copy stamp, text only, the
closest of our roles to the naive loop's invisible field). Human-readable lines go out while it runs; the
last line is exactly one JSON object.

    .venv/bin/python benchmarks/signing.py                 # full run
    .venv/bin/python benchmarks/signing.py --seconds 0.05  # smoke run (the test suite does this)
    .venv/bin/python benchmarks/signing.py --profile       # also print where signing spends its time
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import gc
import io
import json
import platform
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

# This file shares its name with the package it measures: run as a script, its own directory would come
# first on sys.path and ``import signing`` would find this file. Take that directory off the path.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding, rsa  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402
from lxml import etree  # noqa: E402
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter  # noqa: E402
from pyhanko.sign import signers as pyhanko_signers  # noqa: E402

from node.samples import sample_monthly_report  # noqa: E402
from schemas import DocumentMessage, build_message  # noqa: E402
from signing._private import xmldsig  # noqa: E402
from signing.envelope import sign_envelope, verify_envelope  # noqa: E402
from signing.keys import SoftwareKey, load_pem  # noqa: E402
from signing.pdf import PdfSigningKey, PdfSignOptions, SignatureRole, sign_pdf, verify_pdf  # noqa: E402
from signing.report import Indication  # noqa: E402
from signing.trust import TrustStore  # noqa: E402

ORGAN_CODE = "000.01.41.H41"
ENVELOPE_TARGET = 0.5  # envelope signs/s >= half the raw RSA signs/s
PADES_TARGET = 10.0  # PAdES signs/s >= 10x the naive SimpleSigner.load + sign_pdf loop


@dataclass(frozen=True)
class Timing:
    """Per-call wall times (seconds) of one operation."""

    name: str
    calls: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.calls)

    @property
    def best(self) -> float:
        return min(self.calls)


def measure_group(ops: dict[str, Callable[[], object]], *, seconds: float, min_iterations: int) -> dict[str, Timing]:
    """Time ``ops`` interleaved, so that each is measured under the same machine conditions as its peers.

    Each op is warmed up first. Then every round calls each op once (the order rotates from round to
    round), until the group has run for ``seconds`` per op and at least ``min_iterations`` rounds.
    """
    names = list(ops)
    for fn in ops.values():
        warm_deadline = time.perf_counter() + max(seconds / 5, 0.01)
        for i in range(1_000_000):
            fn()
            if i >= 2 and time.perf_counter() >= warm_deadline:
                break
    gc.collect()
    calls: dict[str, list[float]] = {name: [] for name in names}
    clock = time.perf_counter
    end = clock() + seconds * len(names)
    rounds = 0
    while True:
        shift = rounds % len(names)
        for name in names[shift:] + names[:shift]:
            fn = ops[name]
            start = clock()
            fn()
            calls[name].append(clock() - start)
        rounds += 1
        if rounds >= min_iterations and clock() >= end:
            break
    return {name: Timing(name, times) for name, times in calls.items()}


def report(timing: Timing, *, per_call: str) -> None:
    print(
        f"  {timing.name:<44} {len(timing.calls):>6} calls  "
        f"median {timing.median * 1e3:9.3f} ms  best {timing.best * 1e3:9.3f} ms  "
        f"{1 / timing.median:10.1f} {per_call}/s",
        flush=True,
    )


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


# --- a throwaway PKI ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    root: x509.Certificate
    key_path: Path
    cert_path: Path
    chain_path: Path


def _name(common_name: str, organ_code: str | None = None) -> x509.Name:
    attrs = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, common_name),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ]
    if organ_code:
        attrs.append(x509.NameAttribute(NameOID.USER_ID, organ_code))
    return x509.Name(attrs)


def _certificate(
    subject: x509.Name,
    public_key: rsa.RSAPublicKey,
    issuer: x509.Name,
    issuer_key: rsa.RSAPrivateKey,
    *,
    ca: bool,
    days: int,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    usage = x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=not ca,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )


def make_pki(directory: Path) -> Pki:
    """Root CA → Issuing CA → an RSA-2048 organisation certificate with the organ code, as PEM files."""

    def new_key() -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def pem(path: Path, *certs: x509.Certificate) -> Path:
        path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
        return path

    root_key, issuing_key, leaf_key = new_key(), new_key(), new_key()
    root_name = _name("Liên thông Benchmark Root CA")
    root = _certificate(root_name, root_key.public_key(), root_name, root_key, ca=True, days=3650)
    issuing = _certificate(
        _name("Liên thông Benchmark Issuing CA"), issuing_key.public_key(), root_name, root_key, ca=True, days=3650
    )
    leaf = _certificate(
        _name("Sở Tài chính tỉnh Nghệ An", ORGAN_CODE),
        leaf_key.public_key(),
        issuing.subject,
        issuing_key,
        ca=False,
        days=365,
    )
    key_path = directory / "org.key.pem"
    key_path.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return Pki(root, key_path, pem(directory / "org.cert.pem", leaf), pem(directory / "chain.pem", issuing))


# --- the run ------------------------------------------------------------------------------------------


def naive_sign(pki: Pki, pdf: bytes) -> bytes:
    """What a first integration writes: load the key files and sign with plain pyHanko defaults, each time."""
    signer = pyhanko_signers.SimpleSigner.load(
        str(pki.key_path), str(pki.cert_path), ca_chain_files=(str(pki.chain_path),)
    )
    assert signer is not None
    out = pyhanko_signers.sign_pdf(
        IncrementalPdfFileWriter(io.BytesIO(pdf)),
        pyhanko_signers.PdfSignatureMetadata(field_name="Sig1"),
        signer=signer,
    )
    signed: bytes = out.getvalue()
    return signed


def profile(label: str, fn: Callable[[], object], *, calls: int, top: int = 30) -> str:
    """cProfile of ``calls`` calls of ``fn``: cumulative and own-time tables."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        fn()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    out.write(f"--- {label} x{calls}: by cumulative time ---\n")
    stats.sort_stats("cumulative").print_stats(top)
    out.write(f"--- {label} x{calls}: by own time ---\n")
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def run(seconds: float, min_iterations: int, pdf_size: int, *, with_profile: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lienthong-bench-") as tmp:
        pki = make_pki(Path(tmp))
        return _run(pki, seconds, min_iterations, pdf_size, with_profile=with_profile)


def _run(pki: Pki, seconds: float, min_iterations: int, pdf_size: int, *, with_profile: bool) -> dict[str, Any]:
    key = load_pem(pki.key_path, pki.cert_path, pki.chain_path, cache=None)
    assert isinstance(key, SoftwareKey)
    private_key = key.private_key
    assert isinstance(private_key, rsa.RSAPrivateKey)
    message = sample_monthly_report(pdf_size=pdf_size)
    assert isinstance(message, DocumentMessage)
    pdf = message.attachments[0].data
    message_bytes = build_message(message)
    trust = TrustStore(roots=(pki.root,), allow_fetching=False)
    pdf_key = PdfSigningKey(key)
    options = {role: PdfSignOptions(role=role) for role in SignatureRole}

    # Sanity, once, before any timing: every operation does what it claims.
    signed = sign_envelope(message_bytes, key)
    checked = verify_envelope(signed, trust)
    assert checked.report.signatures[0].indication is Indication.TOTAL_PASSED, checked.report.signatures[0]
    assert checked.message == message
    signed_info_element = etree.fromstring(signed).find(f".//{xmldsig.ds('SignedInfo')}")
    assert signed_info_element is not None
    signed_info = xmldsig.c14n(signed_info_element)  # what the raw RSA signature is over: the real thing
    signed_pdfs = {role: sign_pdf(pdf, pdf_key, options[role]) for role in SignatureRole}
    for role, data in signed_pdfs.items():
        (found,) = verify_pdf("bench.pdf", data, trust)
        assert found.indication is Indication.TOTAL_PASSED, (role, found)
    naive = naive_sign(pki, pdf)
    assert naive.startswith(pdf)
    organisation_pdf = signed_pdfs[SignatureRole.ORGANISATION]
    # What the exchange sends: the director's signature, then the organisation's seal in a later revision.
    two_signatures_pdf = sign_pdf(signed_pdfs[SignatureRole.SIGNER], pdf_key, options[SignatureRole.ORGANISATION])
    two_reports = verify_pdf("bench.pdf", two_signatures_pdf, trust)
    assert [r.indication for r in two_reports] == [Indication.TOTAL_PASSED] * 2, two_reports

    print(
        f"signing benchmark: message {len(message_bytes):,} bytes with a {len(pdf):,}-byte PDF, "
        f"signed envelope {len(signed):,} bytes, SignedInfo {len(signed_info):,} bytes; "
        f">= {seconds} s and >= {min_iterations} rounds per operation",
        flush=True,
    )

    def timed(ops: dict[str, Callable[[], object]]) -> dict[str, Timing]:
        return measure_group(ops, seconds=seconds, min_iterations=min_iterations)

    pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()
    public_key = private_key.public_key()
    raw_signature = private_key.sign(signed_info, pkcs1, sha256)
    print("envelope signing: sign_envelope next to a raw RSA-2048 signature (cryptography)", flush=True)
    envelope_sign = timed(
        {
            "raw RSA-2048 sign (PKCS#1 v1.5, SHA-256)": lambda: private_key.sign(signed_info, pkcs1, sha256),
            "sign_envelope": lambda: sign_envelope(message_bytes, key),
        }
    )
    raw_rsa, env_sign = envelope_sign.values()
    for timing in envelope_sign.values():
        report(timing, per_call="ops")

    print("envelope verification: verify_envelope (full path validation) next to a raw RSA-2048 verify", flush=True)
    envelope_verify = timed(
        {
            "raw RSA-2048 verify": lambda: public_key.verify(raw_signature, signed_info, pkcs1, sha256),
            "verify_envelope (full path validation)": lambda: verify_envelope(signed, trust),
        }
    )
    raw_rsa_verify, env_verify = envelope_verify.values()
    for timing in envelope_verify.values():
        report(timing, per_call="ops")

    print("PAdES: sign_pdf (organisation seal, copy, signer image), verify_pdf, next to the naive loop", flush=True)
    pades = timed(
        {
            "naive: SimpleSigner.load + pyhanko sign_pdf": lambda: naive_sign(pki, pdf),
            "sign_pdf (organisation seal)": lambda: sign_pdf(pdf, pdf_key, options[SignatureRole.ORGANISATION]),
            "sign_pdf (electronic copy, text only)": lambda: sign_pdf(pdf, pdf_key, options[SignatureRole.COPY]),
            "sign_pdf (signer image)": lambda: sign_pdf(pdf, pdf_key, options[SignatureRole.SIGNER]),
            "verify_pdf (organisation seal)": lambda: verify_pdf("bench.pdf", organisation_pdf, trust),
            "verify_pdf (signer, then organisation seal)": lambda: verify_pdf("bench.pdf", two_signatures_pdf, trust),
        }
    )
    naive_t, seal_t, copy_t, signer_t, pdf_verify, pdf_verify_two = pades.values()
    for timing in pades.values():
        report(timing, per_call="ops")

    def rate(t: Timing, *, best: bool = False) -> float:
        return 1 / (t.best if best else t.median)

    result: dict[str, Any] = {
        "message_bytes": len(message_bytes),
        "pdf_bytes": len(pdf),
        "signed_envelope_bytes": len(signed),
        "raw_rsa_signs_per_s": rate(raw_rsa),
        "raw_rsa_verifies_per_s": rate(raw_rsa_verify),
        "envelope_signs_per_s": rate(env_sign),
        "envelope_verifies_per_s": rate(env_verify),
        "pades_signs_per_s": rate(seal_t),
        "pades_copy_signs_per_s": rate(copy_t),
        "pades_signer_signs_per_s": rate(signer_t),
        "pades_verifies_per_s": rate(pdf_verify),
        "pades_verifies_two_signatures_per_s": rate(pdf_verify_two),
        "naive_pades_signs_per_s": rate(naive_t),
        "envelope_sign_vs_raw_rsa": raw_rsa.median / env_sign.median,
        "pades_sign_vs_naive": naive_t.median / seal_t.median,
        "pades_invisible_sign_vs_naive": naive_t.median / copy_t.median,
        "pades_signer_sign_vs_naive": naive_t.median / signer_t.median,
        "envelope_sign_target": ENVELOPE_TARGET,
        "pades_sign_target": PADES_TARGET,
        "envelope_sign_target_met": raw_rsa.median / env_sign.median >= ENVELOPE_TARGET,
        "pades_sign_target_met": naive_t.median / seal_t.median >= PADES_TARGET,
        "pades_invisible_sign_target_met": naive_t.median / copy_t.median >= PADES_TARGET,
        "raw_rsa_signs_per_s_best": rate(raw_rsa, best=True),
        "envelope_signs_per_s_best": rate(env_sign, best=True),
        "envelope_verifies_per_s_best": rate(env_verify, best=True),
        "pades_signs_per_s_best": rate(seal_t, best=True),
        "pades_verifies_per_s_best": rate(pdf_verify, best=True),
        "pades_verifies_two_signatures_per_s_best": rate(pdf_verify_two, best=True),
        "naive_pades_signs_per_s_best": rate(naive_t, best=True),
        "iterations": {
            t.name: len(t.calls) for group in (envelope_sign, envelope_verify, pades) for t in group.values()
        },
        "seconds_per_operation": seconds,
        "statistic": "median call (the *_best keys: fastest call)",
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cryptography": _version("cryptography"),
        "lxml": ".".join(map(str, etree.LXML_VERSION)),
        "pyhanko": _version("pyHanko"),
        "pyhanko_certvalidator": _version("pyhanko-certvalidator"),
        "asn1crypto": _version("asn1crypto"),
        "machine": platform.machine(),
    }
    print(
        f"envelope signing is {result['envelope_sign_vs_raw_rsa']:.2f}x raw RSA "
        f"(target {ENVELOPE_TARGET}: {'met' if result['envelope_sign_target_met'] else 'NOT met'}); "
        f"PAdES organisation seal {result['pades_sign_vs_naive']:.1f}x the naive loop "
        f"(target {PADES_TARGET:g}x: {'met' if result['pades_sign_target_met'] else 'NOT met'}), "
        f"text-only copy {result['pades_invisible_sign_vs_naive']:.1f}x",
        flush=True,
    )
    if with_profile:
        print(profile("sign_envelope", lambda: sign_envelope(message_bytes, key), calls=200), flush=True)
        print(profile("verify_envelope", lambda: verify_envelope(signed, trust), calls=100), flush=True)
        seal = options[SignatureRole.ORGANISATION]
        print(profile("sign_pdf (organisation seal)", lambda: sign_pdf(pdf, pdf_key, seal), calls=30), flush=True)
        print(profile("verify_pdf", lambda: verify_pdf("bench.pdf", organisation_pdf, trust), calls=30), flush=True)
        print(
            profile(
                "verify_pdf (signer, then organisation seal)",
                lambda: verify_pdf("bench.pdf", two_signatures_pdf, trust),
                calls=30,
            ),
            flush=True,
        )
    return result


def _rounded(value: Any) -> Any:
    """Floats to 6 significant digits: the noise is larger than that anyway."""
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=1.5, help="minimum timed seconds per operation (1.5)")
    parser.add_argument("--min-iterations", type=int, default=20, help="minimum timed calls per operation (20)")
    parser.add_argument("--pdf-size", type=int, default=100_000, help="size of the sample PDF in bytes (10**5)")
    parser.add_argument("--profile", action="store_true", help="also print cProfiles of signing and verifying")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.min_iterations < 1 or args.pdf_size < 0:
        parser.error("--seconds must be > 0, --min-iterations >= 1, --pdf-size >= 0")
    result = run(args.seconds, args.min_iterations, args.pdf_size, with_profile=args.profile)
    print(json.dumps(_rounded(result), ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
