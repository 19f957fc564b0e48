"""Internals of ``storage``: not imported from outside the package."""
