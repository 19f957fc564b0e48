"""``lienthong archive …``: find, retrieve, re-verify and export archived envelopes (every read is audited)."""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import sys
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from node._private.text import inert
from node.cli.node_cmds import _VERIFIED, ConfigOption, JsonOption, _fail, _local_time, _runtime, err, out, status_label

if TYPE_CHECKING:
    from storage.archive import ArchiveEntry

app = typer.Typer(help="The archive: search, get the exact bytes, re-verify, export as BagIt.", no_args_is_help=True)
ACTOR = "cli"


def _query(**filters: object):  # type: ignore[no-untyped-def]
    from storage.archive import ArchiveQuery
    from storage.errors import ArchiveQueryError

    try:
        return ArchiveQuery(**{k: v for k, v in filters.items() if v is not None})  # type: ignore[arg-type]
    except ArchiveQueryError as e:
        raise _fail(str(e)) from None


def _date(value: str | None, option: str) -> date | None:
    """A date option as YYYY-MM-DD; a wrong one is named, with the ISO form of a dd/mm/yyyy date people type."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        pass
    example = "2026-11-16"
    if m := re.fullmatch(r"\s*(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})\s*", value):  # dd/mm/yyyy, as on paper
        with contextlib.suppress(ValueError):
            example = date(int(m[3]), int(m[2]), int(m[1])).isoformat()
    raise _fail(f"{option} {value!r} is not a date: write it as YYYY-MM-DD, e.g. {example}")


# The filters `search` and `export` share, so both say the same of each.
TextFilter = Annotated[str | None, typer.Option("--text", "-t", help="Words of the subject (accents optional).")]
AgencyFilter = Annotated[str | None, typer.Option("--agency", help="The organisation of this node concerned.")]
SenderFilter = Annotated[str | None, typer.Option("--sender", help="The sending organisation's code.")]
RecipientFilter = Annotated[str | None, typer.Option("--recipient", help="A recipient organisation's code.")]
DirectionFilter = Annotated[str | None, typer.Option("--direction", help="in, out or transit.")]
KindFilter = Annotated[str | None, typer.Option("--kind", help="document or status.")]
DocumentIdFilter = Annotated[str | None, typer.Option("--document-id", help="The edXML DocumentId, exactly.")]
CodeFilter = Annotated[str | None, typer.Option("--code", help="Số/ký hiệu, e.g. 245/BC-STC.")]
TypeFilter = Annotated[str | None, typer.Option("--type", help="e.g. Báo cáo.")]
StatusFilter = Annotated[str | None, typer.Option("--status", help="Latest status code, e.g. 06.")]
PeriodFilter = Annotated[str | None, typer.Option("--period", help="Report period: 2026, 2026-10, 2026-Q3, 2026-H1.")]
FromFilter = Annotated[str | None, typer.Option("--from", help="YYYY-MM-DD (promulgation date).")]
ToFilter = Annotated[str | None, typer.Option("--to", help="YYYY-MM-DD.")]


def _selection(  # type: ignore[no-untyped-def]
    text: str | None,
    agency: str | None,
    sender: str | None,
    recipient: str | None,
    direction: str | None,
    kind: str | None,
    document_id: str | None,
    code: str | None,
    document_type: str | None,
    status: str | None,
    period: str | None,
    date_from: str | None,
    date_to: str | None,
    **page: object,
):
    """The archive query the shared filters describe (dates checked and named), plus ``page`` (limit, cursor)."""
    return _query(
        text=text,
        agency=agency,
        sender=sender,
        recipient=recipient,
        direction=direction,
        kind=kind,
        document_id=document_id,
        code=code,
        document_type=document_type,
        status=status,
        report_period=period,
        date_from=_date(date_from, "--from"),
        date_to=_date(date_to, "--to"),
        **page,
    )


@app.command()
def search(
    config: ConfigOption = None,
    text: TextFilter = None,
    agency: AgencyFilter = None,
    sender: SenderFilter = None,
    recipient: RecipientFilter = None,
    direction: DirectionFilter = None,
    kind: KindFilter = None,
    document_id: DocumentIdFilter = None,
    code: CodeFilter = None,
    document_type: TypeFilter = None,
    status: StatusFilter = None,
    period: PeriodFilter = None,
    date_from: FromFilter = None,
    date_to: ToFilter = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Search the archive, newest first."""
    from node.archive import search as run_search

    query = _selection(
        text,
        agency,
        sender,
        recipient,
        direction,
        kind,
        document_id,
        code,
        document_type,
        status,
        period,
        date_from,
        date_to,
        limit=limit,
        cursor=cursor,
    )
    runtime = _runtime(config)
    try:
        page = run_search(runtime, query, actor=ACTOR)
    except ValueError as e:
        raise _fail(str(e)) from None
    finally:
        runtime.close()
    if as_json:
        payload = {
            "items": [e.as_json() for e in page.items],
            "total": page.total,
            "total_exact": page.total_exact,
            "next_cursor": page.next_cursor,
        }
        sys.stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")
        return
    if not page.items:
        given = _given_filters(
            text=text,
            agency=agency,
            sender=sender,
            recipient=recipient,
            direction=direction,
            kind=kind,
            document_id=document_id,
            code=code,
            type=document_type,
            status=status,
            period=period,
            **{"from": date_from, "to": date_to},
        )
        further = " further" if cursor else ""
        out.print(Text(f"No{further} archive entry matches {given}." if given else "The archive holds no entry yet."))
        return
    total = f"{page.total:,}" if page.total_exact else f"more than {page.total:,}"
    # one block per entry, not a table: a table cut DocumentIds and codes short in 80 columns ("000.01.4…"),
    # and the archivist copies the DocumentId whole to act on it; what the sender wrote is shown inert
    out.print(Text(f"Archive: {total} match(es), newest first:", style="bold"))
    for item in page.items:
        out.print(_entry_header(item))
        out.print(Text(f"  {inert(item.document_id)}"))
        if item.kind == "status":
            out.print(Text(f"  status {status_label(item.status_code or '')}"))
        else:
            out.print(Text("  " + "  ".join(inert(part) for part in (item.code, item.subject) if part)))
    if page.next_cursor:
        out.print(f"next page: --cursor {page.next_cursor}")


def _entry_header(item: ArchiveEntry) -> Text:
    """``id 3  dated 2026-11-16  in document from 000.01.41.H41  ✔ TOTAL_PASSED  01 đã đến (arrived)``: the
    date is the search date, the promulgation date or else the archiving time in Vietnam time."""
    when = (
        f"dated {item.promulgation_date.isoformat()}"
        if item.promulgation_date
        else f"archived {_local_time(item.archived_at)} ICT"
    )
    if item.verified:
        verdict = _VERIFIED.get(item.verified, (inert(item.verified), "yellow"))
    else:
        verdict = ("not verified (sent by this node)", "dim") if item.direction == "out" else ("not verified", "yellow")
    latest = f"  {status_label(item.latest_status)}" if item.kind == "document" and item.latest_status else ""
    return Text.assemble(
        (f"id {item.id}", "bold"),
        f"  {when}  {item.direction} {item.kind} from {inert(item.sender)}  ",
        verdict,
        latest,
    )


def _given_filters(**options: str | None) -> str:
    """The filters a search was given, as typed on the command line (values inert: they may be pasted text)."""
    return " ".join(
        f"--{name.replace('_', '-')} {shlex.quote(inert(value))}" for name, value in options.items() if value
    )


@app.command()
def get(
    entry_id: Annotated[int, typer.Argument(help="The archive entry id.")],
    config: ConfigOption = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here (default: stdout).")] = None,
) -> None:
    """The exact bytes of an archived envelope, as stored."""
    from node.archive import get_entry
    from storage.errors import StorageError

    runtime = _runtime(config)
    try:
        _entry, data = get_entry(runtime, entry_id, actor=ACTOR)
    except (StorageError, KeyError) as e:
        raise _fail(str(e)) from None
    finally:
        runtime.close()
    if output is None:
        sys.stdout.buffer.write(data)
        return
    try:
        output.write_bytes(data)
    except OSError as e:
        raise _fail(f"cannot write {output}: {e.strerror or e}") from None
    out.print(f"wrote {output} ({len(data):,} bytes)")


@app.command()
def verify(
    entry_id: Annotated[int, typer.Argument(help="The archive entry id.")],
    config: ConfigOption = None,
    at_original_time: Annotated[
        bool, typer.Option("--at-original-time", help="As of when it was archived, from the stored evidence, offline.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Verify an archived envelope again (exit 0 valid, 1 invalid, 2 indeterminate)."""
    from node._private.report_render import render_report
    from node.archive import reverify
    from storage.errors import StorageError

    runtime = _runtime(config)
    try:
        result = reverify(runtime, entry_id, actor=ACTOR, at_original_time=at_original_time)
    except (StorageError, KeyError) as e:
        raise _fail(str(e)) from None
    finally:
        runtime.close()
    if as_json:
        sys.stdout.write(result.report.model_dump_json() + "\n")
    else:
        when = "now (fetching revocation data as the node's trust settings allow)"
        if result.at:
            when = (
                f"as of {_vietnam(result.at)}, when it was archived, offline from the"
                f" {len(result.entry.evidence_keys)} OCSP response(s) and CRL(s) stored with it"
            )
        out.print(f"Archive entry {entry_id}, verified {when}:")
        out.print(render_report(result.report))
        out.print(_then_and_now(result.entry.verified, result.entry.archived_at, result.report.indication.value))
    raise typer.Exit(result.report.exit_code)


def _vietnam(moment: datetime) -> str:
    from schemas import VIETNAM_TIME

    return moment.astimezone(VIETNAM_TIME).isoformat(timespec="seconds")


def _then_and_now(then: str, archived_at: datetime, now: str) -> str:
    """The indication recorded when the entry was archived beside today's, so a change cannot go unnoticed."""
    if not then:
        return f"When archived ({_vietnam(archived_at)}): not verified (this node sent it); this time: {now}"
    line = f"When archived ({_vietnam(archived_at)}): {then}; this time: {now}"
    return line + (" (unchanged)" if then == now else " [bold yellow](CHANGED since archiving)[/]")


class _Progress:
    """Progress of long work on stderr: a line at most every two seconds, and one when each stage ends."""

    def __init__(self) -> None:
        import time

        self._last = time.monotonic()  # quick work prints only its totals

    def __call__(self, what: str, done: int, total: int) -> None:
        import time

        now = time.monotonic()
        if done < total and now - self._last < 2:
            return
        self._last = now
        err.print(f"  {what}: {done:,}/{total:,}", highlight=False)


@app.command()
def export(
    target: Annotated[Path, typer.Argument(help="A new directory, or a new file ending in .zip (never replaced).")],
    config: ConfigOption = None,
    text: TextFilter = None,
    agency: AgencyFilter = None,
    sender: SenderFilter = None,
    recipient: RecipientFilter = None,
    direction: DirectionFilter = None,
    kind: KindFilter = None,
    document_id: DocumentIdFilter = None,
    code: CodeFilter = None,
    document_type: TypeFilter = None,
    status: StatusFilter = None,
    period: PeriodFilter = None,
    date_from: FromFilter = None,
    date_to: ToFilter = None,
    max_entries: Annotated[
        int, typer.Option(min=1, help="Refuse, rather than cut short, a selection of more entries.")
    ] = 10_000,
) -> None:
    """Export a selection as a BagIt package (RFC 8493) with reports, evidence and audit proofs.

    Takes the filters of `search`; check the selection with `search` first.
    """
    from node.archive import ExportError
    from node.archive import export as run_export
    from storage.errors import StorageError

    query = _selection(
        text,
        agency,
        sender,
        recipient,
        direction,
        kind,
        document_id,
        code,
        document_type,
        status,
        period,
        date_from,
        date_to,
        limit=500,
    )
    runtime = _runtime(config)
    try:
        result = run_export(runtime, query, str(target), actor=ACTOR, max_entries=max_entries, progress=_Progress())
    except (ExportError, StorageError) as e:
        raise _fail(str(e)) from None
    except OSError as e:
        where = f" ({e.filename}: {e.strerror})" if e.filename and e.strerror else f": {e}"
        raise _fail(f"cannot write {target}{where}") from None
    finally:
        runtime.close()
    out.print(f"wrote {result.path}: {result.entries} entries, {result.files} files, {result.proofs} audit proofs")
    out.print(f"  axis witness: {result.witnessed}", highlight=False)
