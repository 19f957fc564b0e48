"""Internals of ``schemas``; import from the package top instead."""
