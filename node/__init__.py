"""The Liên thông node: CLI ``lienthong``, and (as the exchange lands) the FastAPI service, delivery,
routing, statuses, audit log and web UI. ``node`` sits on top: nothing below imports it."""
