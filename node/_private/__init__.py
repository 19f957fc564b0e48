"""Internals of ``node``."""
