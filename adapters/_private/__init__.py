"""Internals of ``adapters``; nothing here is public API."""
