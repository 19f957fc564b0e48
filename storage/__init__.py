"""Database, object store and archive index. ``storage`` knows bytes and rows, not edXML semantics."""
