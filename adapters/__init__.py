"""Clients of outside systems: another axis, the national VDXP axis API, timestamp authorities, remote signing."""
