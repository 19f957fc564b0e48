"""Internals of ``signing``; import from the package top instead."""
