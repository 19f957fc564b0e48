"""Audit log throughput and proof latency, on SQLite files in a temporary directory.

* appends: realistic ~300-byte events (RFC 8785 canonicalized, hashed, stored with their subtree hashes),
  in transactions of ``--batch`` events (``append_many``) and one by one (``append``);
* proofs at ``--entries`` events (default 1,000,000): the tree is bulk-loaded through ``append_leaves`` with
  small leaves, then inclusion and consistency proofs are generated from the database *and* verified, call by
  call, at random indexes and sizes;
* the raw primitive: ``hashlib.sha256`` of one 300-byte event, measured in the same run.

Ratios: ``append_vs_raw_sha256`` = appends/s ÷ raw SHA-256/s; ``*_proof_in_sha256`` = how many raw SHA-256
calls one proof (generation + verification) costs. Human-readable lines first; the last line is one JSON object.

    .venv/bin/python benchmarks/audit.py                               # full run (1,000,000 entries)
    .venv/bin/python benchmarks/audit.py --entries 20000 --seconds 0.2 # smoke run (the test suite does this)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from storage.auditlog import AuditLog
from storage.canonical import event_leaf
from storage.db import create_schema, make_engine
from storage.merkle import leaf_hash, verify_consistency, verify_inclusion


def _event(i: int) -> dict[str, Any]:
    return {
        "type": "envelope.received",
        "time": "2025-10-14T08:30:00+07:00",
        "node": "000.00.00.H41",
        "sender": "000.00.00.G22",
        "document_id": f"000.00.00.G22,2025/10/14,{i}/BC-VPCP",
        "object": "sha256/" + hashlib.sha256(i.to_bytes(8, "big")).hexdigest(),
        "outcome": "verified",
        "actor": "system",
        "n": i,
    }


def _engine(directory: Path, name: str) -> Engine:
    engine = make_engine(f"sqlite:///{directory / name}")
    create_schema(engine)
    return engine


def _raw_sha256_per_s(data: bytes, seconds: float) -> float:
    calls, start = 0, time.perf_counter()
    end = start + seconds
    while True:
        for _ in range(1000):
            hashlib.sha256(data).digest()
        calls += 1000
        now = time.perf_counter()
        if now >= end:
            return calls / (now - start)


def _append_rate(log: AuditLog, seconds: float, batch: int, offset: int) -> tuple[float, int]:
    appended, start = 0, time.perf_counter()
    end = start + seconds
    while True:
        if batch == 1:
            log.append(_event(offset + appended))
        else:
            log.append_many([_event(offset + appended + i) for i in range(batch)])
        appended += batch
        now = time.perf_counter()
        if now >= end:
            return appended / (now - start), appended


def _small_leaf(i: int) -> bytes:
    return b'{"n":%d}' % i


def _bulk_load(log: AuditLog, entries: int, chunk: int = 50_000) -> float:
    start = time.perf_counter()
    for first in range(0, entries, chunk):
        log.append_leaves([_small_leaf(i) for i in range(first, min(entries, first + chunk))])
    return time.perf_counter() - start


def _proof_times(log: AuditLog, size: int, seconds: float, rng: random.Random) -> tuple[list[float], list[float]]:
    root = log.root(size)
    sizes1 = [rng.randrange(1, size) if size > 1 else 1 for _ in range(32)]
    roots1 = {s: log.root(s) for s in sizes1}
    clock = time.perf_counter
    inclusion: list[float] = []
    consistency: list[float] = []
    end = clock() + 2 * seconds
    rounds = 0
    while rounds < 50 or clock() < end:
        index = rng.randrange(size)
        expected_leaf = leaf_hash(_small_leaf(index))
        t0 = clock()
        verify_inclusion(expected_leaf, index, size, log.inclusion_proof(index, size), root)
        t1 = clock()
        size1 = sizes1[rounds % len(sizes1)]
        verify_consistency(size1, size, log.consistency_proof(size1, size), roots1[size1], root)
        t2 = clock()
        if rounds >= 10:  # warm-up: page cache, statement cache
            inclusion.append(t1 - t0)
            consistency.append(t2 - t1)
        rounds += 1
    return inclusion, consistency


def run(entries: int, seconds: float, batch: int) -> dict[str, Any]:
    sample = event_leaf(_event(123456))
    print(f"audit benchmark: events of {len(sample)} bytes, proofs at {entries:,} entries, SQLite files", flush=True)
    raw = _raw_sha256_per_s(sample, seconds)
    print(f"  raw hashlib.sha256({len(sample)} bytes)         {raw:12,.0f} /s", flush=True)
    with tempfile.TemporaryDirectory(prefix="lienthong-audit-bench-") as tmp:
        directory = Path(tmp)
        engine = _engine(directory, "append.db")
        log = AuditLog(engine)
        log.append_many([_event(i) for i in range(batch)])  # warm-up
        batched, n_batched = _append_rate(log, seconds, batch, batch)
        print(f"  append_many, {batch} events per transaction  {batched:12,.0f} events/s ({n_batched} events)")
        single, n_single = _append_rate(log, seconds, 1, batch + n_batched)
        print(f"  append, one transaction per event        {single:12,.0f} events/s ({n_single} events)", flush=True)
        engine.dispose()

        engine = _engine(directory, "big.db")
        big = AuditLog(engine)
        load_s = _bulk_load(big, entries)
        print(f"  bulk load of {entries:,} leaves: {load_s:.1f} s ({entries / load_s:,.0f} leaves/s)", flush=True)
        inclusion, consistency = _proof_times(big, entries, seconds, random.Random(9162))
        engine.dispose()
    inc, con = statistics.median(inclusion), statistics.median(consistency)
    inc_p95 = statistics.quantiles(inclusion, n=20)[-1]
    con_p95 = statistics.quantiles(consistency, n=20)[-1]
    print(f"  inclusion proof + verify at {entries:,}:   median {inc * 1e6:8.1f} µs  p95 {inc_p95 * 1e6:8.1f} µs")
    print(f"  consistency proof + verify at {entries:,}: median {con * 1e6:8.1f} µs  p95 {con_p95 * 1e6:8.1f} µs")
    result: dict[str, Any] = {
        "entries": entries,
        "event_bytes": len(sample),
        "batch": batch,
        "append_events_per_s": batched,
        "append_single_events_per_s": single,
        "inclusion_proof_us": inc * 1e6,
        "inclusion_proof_p95_us": inc_p95 * 1e6,
        "consistency_proof_us": con * 1e6,
        "consistency_proof_p95_us": con_p95 * 1e6,
        "raw_sha256_per_s": raw,
        "append_vs_raw_sha256": batched / raw,
        "inclusion_proof_in_sha256": inc * raw,
        "consistency_proof_in_sha256": con * raw,
        "bulk_load_leaves_per_s": entries / load_s,
        "proof_samples": len(inclusion),
        "statistic": "median call; proofs are generation from the database + verification",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "machine": platform.machine(),
    }
    print(
        f"append is {result['append_vs_raw_sha256']:.4f}x raw SHA-256; an inclusion proof costs "
        f"{result['inclusion_proof_in_sha256']:.0f} raw SHA-256 calls, a consistency proof "
        f"{result['consistency_proof_in_sha256']:.0f}",
        flush=True,
    )
    return result


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.6g}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=1_000_000, help="tree size for the proofs (10**6)")
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per measurement (2)")
    parser.add_argument("--batch", type=int, default=100, help="events per append_many transaction (100)")
    args = parser.parse_args(argv)
    if args.entries < 2 or args.seconds <= 0 or args.batch < 2:
        parser.error("--entries must be >= 2, --seconds > 0, --batch >= 2")
    result = run(args.entries, args.seconds, args.batch)
    print(json.dumps({k: _rounded(v) for k, v in result.items()}, ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
