"""What each incremental update of a PDF changed, in words a reader of the verification report understands.

pyHanko's difference analysis judges all the revisions after a signature together (a modification level, and
the form fields changed); it does not say which revision did what. This looks at the objects each revision
writes, as they are in that revision, and names them: a signature, a form field filled, an annotation, a page
added, a page's content, validation data. It only describes: whether a change is allowed is pyHanko's
verdict (with our rule on top, in ``signing.pdf``); ``content`` marks the changes that alter what the
document says or shows, so that a revision carrying one is never reported as allowed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pyhanko.pdf_utils import generic

__all__ = ["RevisionChanges", "revision_changes"]

# Page tree nodes followed to find each page's content streams (an honest tree is a few levels deep).
_MAX_PAGE_NODES = 10_000


@dataclass
class RevisionChanges:
    items: list[str] = field(default_factory=list)  # in the order found, each named once
    content: bool = False  # something a reader sees changed (not a signature, a timestamp, validation data)

    def add(self, item: str, *, content: bool = False) -> None:
        if item not in self.items:
            self.items.append(item)
        self.content = self.content or content

    @property
    def description(self) -> str:
        return ", ".join(self.items) if self.items else "no objects changed"


def _name(value: Any) -> str:
    return str(value) if isinstance(value, (generic.NameObject, str)) else ""


def _lineage(widget: generic.DictionaryObject) -> Iterator[generic.DictionaryObject]:
    """``widget``, then the fields it descends from (at most 32 in all, up to the first that is not a dictionary)."""
    node: Any = widget
    for _ in range(32):
        yield node
        parent = node.get("/Parent")
        if parent is None:
            return
        node = parent.get_object()
        if not isinstance(node, generic.DictionaryObject):
            return


def _field_name(widget: generic.DictionaryObject) -> str:
    """The fully qualified name of the field a widget belongs to (``parent.child``)."""
    titles = [str(title) for node in _lineage(widget) if (title := node.get("/T")) is not None]
    return ".".join(reversed(titles))


def _field_type(widget: generic.DictionaryObject) -> str:
    return next((_name(ft) for node in _lineage(widget) if (ft := node.get("/FT")) is not None), "")


def _pages(resolver: Any) -> tuple[list[tuple[int, int]], set[tuple[int, int]]]:
    """The pages of a revision, in order, and their content streams (object number, generation)."""
    pages: list[tuple[int, int]] = []
    contents: set[tuple[int, int]] = set()
    root = resolver.root.raw_get("/Pages")
    stack = [root]
    seen: set[Any] = set()
    while stack and len(seen) < _MAX_PAGE_NODES:
        ref = stack.pop()
        if not isinstance(ref, generic.IndirectObject) or _key(ref.reference) in seen:
            continue
        seen.add(_key(ref.reference))
        node = ref.get_object()
        if not isinstance(node, generic.DictionaryObject):
            continue
        if _name(node.get("/Type")) == "/Pages" or "/Kids" in node:
            kids = node.get("/Kids")
            if isinstance(kids, generic.ArrayObject):
                stack.extend(reversed([kids.raw_get(i) for i in range(len(kids))]))
            continue
        pages.append(_key(ref.reference))
        raw = node.raw_get("/Contents") if "/Contents" in node else None
        if isinstance(raw, generic.IndirectObject):
            contents.add(_key(raw.reference))
            inner = raw.get_object()
            if isinstance(inner, generic.ArrayObject):
                raw = inner
        if isinstance(raw, generic.ArrayObject):
            for i in range(len(raw)):
                item = raw.raw_get(i)
                if isinstance(item, generic.IndirectObject):
                    contents.add(_key(item.reference))
    return pages, contents


def _key(ref: generic.Reference) -> tuple[int, int]:
    return ref.idnum, ref.generation


def revision_changes(reader: Any, revision: int) -> RevisionChanges:
    """What ``revision`` (0-based) of ``reader`` wrote, named (see the module notes)."""
    changes = RevisionChanges()
    resolver = reader.get_historical_resolver(revision)
    xrefs = reader.xrefs
    written = sorted(xrefs.explicit_refs_in_revision(revision), key=_key)
    pages_now, contents_now = _pages(resolver)
    pages_before = set(_pages(reader.get_historical_resolver(revision - 1))[0]) if revision > 0 else set()
    page_numbers = {r: i + 1 for i, r in enumerate(pages_now)}
    for ref in written:
        new = xrefs.get_introducing_revision(ref) == revision
        verb = "added" if new else "changed"
        try:
            obj = resolver(ref)
        except Exception:  # a broken object is named, not followed
            changes.add(f"object {ref.idnum} (unreadable)", content=True)
            continue
        if _key(ref) in contents_now:
            changes.add("page content", content=True)
            continue
        if not isinstance(obj, generic.DictionaryObject):
            continue
        kind, subtype = _name(obj.get("/Type")), _name(obj.get("/Subtype"))
        if kind == "/Sig":
            continue  # named with its field
        if kind == "/DocTimeStamp":
            changes.add("document timestamp")
        elif subtype == "/Widget" or "/FT" in obj:
            name = _field_name(obj) or f"object {ref.idnum}"
            if _field_type(obj) == "/Sig":
                changes.add(f"signature {name}")
            else:
                changes.add(f"form field {name} {'added' if new else 'filled or changed'}", content=True)
        elif kind == "/Annot" or (subtype and "/Rect" in obj):
            changes.add(f"annotation {subtype or '(no subtype)'} {verb}", content=True)
        elif _key(ref) in page_numbers:
            if _key(ref) not in pages_before:
                changes.add(f"page added (page {page_numbers[_key(ref)]})", content=True)
        elif "/OCSPs" in obj or "/CRLs" in obj or "/Certs" in obj or "/VRI" in obj:
            changes.add("validation data (DSS)")
    removed = pages_before - set(pages_now)
    if removed:
        changes.add(f"{len(removed)} page(s) removed", content=True)
    return changes
