"""The benchmarks run and speak JSON on their last line. Smoke only: no timing is asserted here."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import REPO


def run_benchmark(script: str, *args: str, timeout: float = 300) -> dict[str, Any]:
    """Run ``benchmarks/SCRIPT`` with ``args``; its JSON last line, after checking human lines come first."""
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) > 1, "human-readable lines come before the JSON"
    result = json.loads(lines[-1])
    assert isinstance(result, dict)
    return result


def assert_positive_numbers(result: dict[str, Any], keys: tuple[str, ...]) -> None:
    for key in keys:
        value = result[key]
        assert isinstance(value, int | float) and not isinstance(value, bool), key
        assert math.isfinite(value) and value > 0, (key, value)


EDXML_NUMBERS = (
    "message_bytes",
    "pdf_bytes",
    "build_msgs_per_s",
    "parse_strict_msgs_per_s",
    "parse_tolerant_msgs_per_s",
    "attachment_decode_mb_per_s",
    "raw_base64_decode_mb_per_s",
    "decode_vs_raw_base64",
)


def test_edxml_benchmark_prints_one_json_object_last() -> None:
    result: dict[str, Any] = run_benchmark("edxml.py", "--seconds", "0.05")
    assert_positive_numbers(result, EDXML_NUMBERS)
    assert result["message_bytes"] > result["pdf_bytes"] >= 900_000
    for key in ("python", "lxml"):
        assert isinstance(result[key], str), key
        assert result[key], key


AUDIT_NUMBERS = (
    "append_events_per_s",
    "append_single_events_per_s",
    "inclusion_proof_us",
    "consistency_proof_us",
    "raw_sha256_per_s",
    "append_vs_raw_sha256",
    "inclusion_proof_in_sha256",
)


def test_audit_benchmark_prints_one_json_object_last() -> None:
    result: dict[str, Any] = run_benchmark("audit.py", "--entries", "5000", "--seconds", "0.05")
    assert_positive_numbers(result, AUDIT_NUMBERS)
    assert result["entries"] == 5000
    assert 250 <= result["event_bytes"] <= 350


ARCHIVE_NUMBERS = ("entries", "queries", "search_p50_ms", "search_p95_ms", "search_p99_ms", "target_p95_ms")


def test_archive_benchmark_prints_one_json_object_last() -> None:
    result: dict[str, Any] = run_benchmark("archive.py", "--entries", "1500", "--queries", "90")
    assert_positive_numbers(result, ARCHIVE_NUMBERS)
    assert result["entries"] == 1500 and result["queries"] == 90
    assert result["search_p50_ms"] <= result["search_p95_ms"] <= result["search_p99_ms"]
    kinds = {"agency_period", "document_id", "code", "text", "text_date", "sender_date", "recipient", "page"}
    assert kinds <= set(result["p95_ms_by_kind"])
    assert isinstance(result["target_met"], bool)


EXCHANGE_NUMBERS = (
    "raw_rsa2048_signs_per_s",
    "senders_1_envelopes_per_s",
    "senders_1_p50_ms",
    "senders_1_p99_ms",
    "senders_4_envelopes_per_s",
    "senders_4_p50_ms",
    "senders_4_p99_ms",
    "unloaded_p50_ms",
    "floor_cpu_ms_per_envelope",
    "ceiling_envelopes_per_s",
    "senders_1_machine_busy_pct",
)


def test_exchange_benchmark_prints_one_json_object_last() -> None:
    result: dict[str, Any] = run_benchmark("exchange.py", "--messages", "4", "--unloaded", "2")
    assert_positive_numbers(result, EXCHANGE_NUMBERS)
    assert result["senders_1_p50_ms"] <= result["senders_1_p99_ms"]
    assert result["messages_per_case"] == 4
    assert isinstance(result["target_met"], bool)
    # The floor is the sum of its measured steps (medians of each, so not exactly), every one of them real work.
    steps = result["floor_steps_cpu_ms"]
    assert len(steps) == 9
    # The PDF library's share is two of those steps, and the budget is what the target leaves per envelope.
    assert 0 < result["floor_pdf_library_cpu_ms"] < result["floor_cpu_ms_per_envelope"]
    assert result["floor_pdf_library_cpu_ms"] == pytest.approx(
        steps["sender_seal_pdf"] + steps["recipient_verify_pdf_signatures"], abs=0.02
    )
    assert result["target_budget_cpu_ms_per_envelope"] == pytest.approx(
        (os.cpu_count() or 1) * 1000 / result["target_envelopes_per_s"]
    )
    assert all(ms > 0 for ms in steps.values())
    assert 0.5 < sum(steps.values()) / result["floor_cpu_ms_per_envelope"] < 2
    assert result["senders_4_machine_busy_pct"] <= 100
