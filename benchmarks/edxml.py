"""edXML throughput: build and parse a typical report message, decode its attachment.

The message is :func:`node.samples.sample_monthly_report` with a 1 MB PDF (header + one attachment).
Every speed is measured next to the raw primitive it sits on, in the same run, so the ratios mean
something on any machine:

* ``schemas.decode_attachment`` (base64 → ZIP → file, under limits) against raw ``base64.b64decode``
  of the same text; both rates are MB (10**6 bytes) of encoded text per second;
* ``schemas.parse_message`` (strict and tolerant) against a raw ``lxml.etree.fromstring`` of the same
  bytes;
* ``schemas.build_message`` against raw ``base64.b64encode`` of the PDF (the bulk of the work).

Each operation is warmed up, then timed call by call, interleaved with the primitive it is compared
with (round after round, rotating the order) so both see the same machine conditions: caches, the
allocator's state, other load. A group runs for ``--seconds`` per operation and at least
``--min-iterations`` rounds. Rates come from the median call (``*_best`` keys: the fastest call);
``*_vs_*`` ratios are median time of the primitive / median time of ours (1.0 = as fast as the
primitive). Human-readable lines go out while it runs; the last line is exactly one JSON object.

    .venv/bin/python benchmarks/edxml.py                 # full run
    .venv/bin/python benchmarks/edxml.py --seconds 0.05  # smoke run (the test suite does this)
    .venv/bin/python benchmarks/edxml.py --profile       # also print where parse_message spends its time
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import gc
import io
import json
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from lxml import etree

from node.samples import sample_monthly_report
from schemas import (
    DocumentMessage,
    ParseMode,
    build_message,
    decode_attachment,
    encode_attachment,
    parse_message,
)

MB = 1_000_000


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


def report(timing: Timing, *, per_call: str, size: int | None = None) -> None:
    line = (
        f"  {timing.name:<34} {len(timing.calls):>6} calls  "
        f"median {timing.median * 1e3:9.3f} ms  best {timing.best * 1e3:9.3f} ms  "
        f"{1 / timing.median:10.1f} {per_call}/s"
    )
    if size is not None:
        line += f"  {size / MB / timing.median:9.1f} MB/s"
    print(line, flush=True)


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def profile_parse(message_bytes: bytes, mode: ParseMode, *, calls: int = 20, top: int = 25) -> str:
    """cProfile of ``calls`` parses; cumulative and own-time tables."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        parse_message(message_bytes, mode=mode)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    out.write(f"--- parse_message({mode.value}) x{calls}: by cumulative time ---\n")
    stats.sort_stats("cumulative").print_stats(top)
    out.write(f"--- parse_message({mode.value}) x{calls}: by own time ---\n")
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def run(seconds: float, min_iterations: int, pdf_size: int) -> dict[str, Any]:
    message = sample_monthly_report(pdf_size=pdf_size)
    assert isinstance(message, DocumentMessage)
    attachment = message.attachments[0]
    pdf = attachment.data
    encoded = encode_attachment(attachment.name, "application/pdf", pdf)
    message_bytes = build_message(message)

    # Sanity: the operations measured do what they claim, once, before any timing.
    assert decode_attachment(encoded).data == pdf
    assert base64.b64decode(encoded)[:2] == b"PK"
    assert build_message(message) == message_bytes
    for mode in ParseMode:
        parsed = parse_message(message_bytes, mode=mode)
        assert isinstance(parsed.message, DocumentMessage)
        assert parsed.message.attachments[0].data == pdf, mode

    print(
        f"edXML benchmark: message {len(message_bytes):,} bytes, PDF {len(pdf):,} bytes, "
        f"attachment text {len(encoded):,} bytes; >= {seconds} s and >= {min_iterations} rounds per operation",
        flush=True,
    )

    def timed(ops: dict[str, Callable[[], object]]) -> dict[str, Timing]:
        return measure_group(ops, seconds=seconds, min_iterations=min_iterations)

    xml_parser = etree.XMLParser(huge_tree=True, resolve_entities=False, no_network=True)

    print("attachment: decode_attachment (base64 -> ZIP -> file, with limits) next to raw base64.b64decode", flush=True)
    group = timed(
        {
            "base64.b64decode(attachment text)": lambda: base64.b64decode(encoded),
            "decode_attachment(attachment text)": lambda: decode_attachment(encoded),
        }
    )
    raw_decode, decode = group.values()
    report(raw_decode, per_call="calls", size=len(encoded))
    report(decode, per_call="calls", size=len(encoded))

    print("build: build_message next to raw base64.b64encode of the PDF", flush=True)
    group = timed(
        {
            "base64.b64encode(pdf)": lambda: base64.b64encode(pdf),
            "build_message": lambda: build_message(message),
        }
    )
    raw_encode, build = group.values()
    report(raw_encode, per_call="calls", size=len(pdf))
    report(build, per_call="msgs", size=len(message_bytes))

    print("parse: parse_message (strict, tolerant) next to raw lxml.etree.fromstring", flush=True)
    group = timed(
        {
            "lxml.etree.fromstring(message)": lambda: etree.fromstring(message_bytes, xml_parser),
            "parse_message(strict)": lambda: parse_message(message_bytes, mode=ParseMode.STRICT),
            "parse_message(tolerant)": lambda: parse_message(message_bytes, mode=ParseMode.TOLERANT),
        }
    )
    raw_lxml, strict, tolerant = group.values()
    for timing in group.values():
        report(timing, per_call="msgs", size=len(message_bytes))

    def rate(t: Timing, *, best: bool = False) -> float:
        return 1 / (t.best if best else t.median)

    def mb_rate(t: Timing, size: int, *, best: bool = False) -> float:
        return size / MB * rate(t, best=best)

    result: dict[str, Any] = {
        "message_bytes": len(message_bytes),
        "pdf_bytes": len(pdf),
        "attachment_text_bytes": len(encoded),
        "build_msgs_per_s": rate(build),
        "parse_strict_msgs_per_s": rate(strict),
        "parse_tolerant_msgs_per_s": rate(tolerant),
        "attachment_decode_mb_per_s": mb_rate(decode, len(encoded)),
        "raw_base64_decode_mb_per_s": mb_rate(raw_decode, len(encoded)),
        "decode_vs_raw_base64": raw_decode.median / decode.median,
        "raw_base64_encode_mb_per_s": mb_rate(raw_encode, len(pdf)),
        "build_vs_raw_base64_encode": raw_encode.median / build.median,
        "raw_lxml_parse_msgs_per_s": rate(raw_lxml),
        "parse_strict_vs_raw_lxml": raw_lxml.median / strict.median,
        "parse_tolerant_vs_raw_lxml": raw_lxml.median / tolerant.median,
        "build_msgs_per_s_best": rate(build, best=True),
        "parse_strict_msgs_per_s_best": rate(strict, best=True),
        "parse_tolerant_msgs_per_s_best": rate(tolerant, best=True),
        "attachment_decode_mb_per_s_best": mb_rate(decode, len(encoded), best=True),
        "raw_base64_decode_mb_per_s_best": mb_rate(raw_decode, len(encoded), best=True),
        "iterations": {
            t.name: len(t.calls) for t in (raw_decode, raw_encode, raw_lxml, decode, build, strict, tolerant)
        },
        "seconds_per_operation": seconds,
        "statistic": "median call (the *_best keys: fastest call)",
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "lxml": ".".join(map(str, etree.LXML_VERSION)),
        "libxml2": ".".join(map(str, etree.LIBXML_VERSION)),
        "xmlschema": _version("xmlschema"),
        "pydantic": _version("pydantic"),
        "machine": platform.machine(),
    }
    print(
        f"attachment decode is {result['decode_vs_raw_base64']:.2f}x raw base64 decode; "
        f"strict parse {result['parse_strict_vs_raw_lxml']:.3f}x and tolerant parse "
        f"{result['parse_tolerant_vs_raw_lxml']:.3f}x raw lxml parse; "
        f"build {result['build_vs_raw_base64_encode']:.3f}x raw base64 encode",
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
    parser.add_argument("--pdf-size", type=int, default=1_000_000, help="size of the sample PDF in bytes (10**6)")
    parser.add_argument(
        "--profile", action="store_true", help="also print a cProfile of parse_message (strict and tolerant)"
    )
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.min_iterations < 1 or args.pdf_size < 0:
        parser.error("--seconds must be > 0, --min-iterations >= 1, --pdf-size >= 0")
    result = run(args.seconds, args.min_iterations, args.pdf_size)
    if args.profile:
        message_bytes = build_message(sample_monthly_report(pdf_size=args.pdf_size))
        for mode in ParseMode:
            print(profile_parse(message_bytes, mode), flush=True)
    print(json.dumps(_rounded(result), ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
