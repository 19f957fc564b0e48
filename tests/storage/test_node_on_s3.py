"""The node on S3: the same exchange code archives into a real S3 server with object lock (SeaweedFS).

A department and the ministry exchange a report in process, both storing into S3 with per-class retention;
the archived envelope is then attacked through the raw S3 API: it can be neither deleted nor replaced.
"""

from __future__ import annotations

import io
import secrets
from pathlib import Path

import pytest
from minio import Minio
from sqlalchemy import select

from node.config import load_settings
from node.network import write_network
from node.receiving import receive_envelope
from node.routing import accept_envelope
from node.runtime import NodeRuntime
from node.samples import MINISTRY
from node.sending import send_document
from storage.exchange import EnvelopeRow
from tests.node.exchange_network import ONE_AXIS, SENDER_AND_MINISTRY, report
from tests.storage.s3server import S3Server


def test_an_exchanged_report_is_locked_in_s3(s3_server: S3Server, tmp_path: Path) -> None:
    from minio.error import S3Error

    from signing.devpki import serve_dev_pki

    bucket = f"archive-{secrets.token_hex(4)}"
    s3 = {"object_store": s3_server.url(bucket), "retention": {"default_days": 1, "per_class": {"document": 2}}}
    with serve_dev_pki(tmp_path / "pki", port=0) as responders:
        network = write_network(
            tmp_path,
            ONE_AXIS,
            SENDER_AND_MINISTRY,
            pki_base_url=responders.url,
            timestamps=False,
            extra={n: s3 for n in ("truc", "so-tai-chinh", "bo-tai-chinh")},
        )
        rt = {n: NodeRuntime(load_settings(p.config)) for n, p in network.nodes.items()}
        try:
            sent = send_document(rt["so-tai-chinh"], report("501"))
            axis = rt["truc"]
            data = rt["so-tai-chinh"].objects.get(_key(rt["so-tai-chinh"], sent.message_id, "out"))
            accept_envelope(axis, data, message_id=sent.message_id, from_node=axis.peer("so-tai-chinh"))  # type: ignore[arg-type]
            routed = axis.objects.get(_key(axis, sent.message_id, "transit"))
            outcome = receive_envelope(
                rt["bo-tai-chinh"], routed, message_id=sent.message_id, recipient=MINISTRY.organ_id
            )
            assert outcome.indication == "TOTAL_PASSED"
            ministry = rt["bo-tai-chinh"]
            key = _key(ministry, sent.message_id, "in")
            info = ministry.objects.stat(key)
            assert info.retain_until is not None and info.document_class == "document"
        finally:
            for runtime in rt.values():
                runtime.close()

    raw = Minio(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, secure=False, region=s3_server.region)
    versions = list(raw.list_objects(bucket, prefix=key, include_version=True))
    assert versions
    with pytest.raises(S3Error):
        raw.remove_object(bucket, key, version_id=versions[0].version_id)
    raw.put_object(bucket, key, io.BytesIO(b"forged"), 6)  # S3 keeps it as a newer version…
    reopened = NodeRuntime(load_settings(network.node("bo-tai-chinh").config))
    try:
        assert reopened.objects.get(key) == routed  # …and the archive still returns the original bytes
    finally:
        reopened.close()


def _key(runtime: NodeRuntime, message_id: str, direction: str) -> str:
    with runtime.session() as s:
        return str(
            s.scalars(
                select(EnvelopeRow.object_key).where(
                    EnvelopeRow.message_id == message_id, EnvelopeRow.direction == direction
                )
            ).first()
        )
