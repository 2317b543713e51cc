"""The ``tls`` line: for ``wss://``, the certificate the gateway showed the daemon's transport,
checked the way the agent checks it (a pinned SHA-256, or a CA chain for the host), and how long
it has left. Plain ``ws://`` is a skip (the config already refused it to a public host).
"""

from __future__ import annotations

import ssl
import time
from urllib.parse import urlsplit

from ..config import normalize_fingerprint
from ..transport import Probe, Stage
from .check import Check, fail, ok, skip, warn
from .context import Context

NAME = "tls"
#: A certificate with less than this left is a warning: renewals get forgotten.
RENEW_WITHIN_S = 14 * 86400


def colon_hex(digest: str) -> str:
    """``ab12...`` as ``AB:12:...``, the way certificate tools print a fingerprint."""
    digest = digest.upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def check_tls(probe: Probe, *, fingerprint: str | None, now: float | None = None) -> Check:
    """``fingerprint`` is the configured pin (None: CA verification)."""
    if urlsplit(probe.url).scheme != "wss":
        return skip(NAME, "plain ws:// (allowed for loopback and private networks)")
    if probe.error is not None and probe.failed_in is Stage.TCP:
        return skip(NAME, "not reached")
    cert = probe.certificate
    pin = normalize_fingerprint(fingerprint) if fingerprint else None
    if probe.error is not None and probe.failed_in is Stage.TLS:
        if pin is not None and cert is not None and cert.sha256 != pin:
            return fail(NAME, f"certificate SHA-256 {colon_hex(cert.sha256)[:23]}… does not match the pin "
                              f"{colon_hex(pin)[:23]}…; the agent refuses to connect",
                        "if the gateway's certificate was replaced on purpose (check on the gateway host), set "
                        f"tls_fingerprint = \"{colon_hex(cert.sha256)}\"")
        return fail(NAME, probe.error.message,
                    probe.error.hint or "check that the gateway serves TLS on this port (else use ws://)")
    if cert is None:
        return skip(NAME, "no certificate seen")
    if pin is not None:
        return ok(NAME, f"certificate matches the pinned SHA-256 {colon_hex(pin)[:23]}…")
    host = urlsplit(probe.url).hostname
    expires = cert.not_after
    detail = f"certificate verified for {host}" + (f" (expires {expires})" if expires else "")
    if expires:
        left = ssl.cert_time_to_seconds(expires) - (time.time() if now is None else now)
        if left < RENEW_WITHIN_S:
            return warn(NAME, f"{detail}: {max(0, left) / 86400:.0f} day(s) left", "renew the gateway's certificate")
    return ok(NAME, f"{detail}; SHA-256 {colon_hex(cert.sha256)[:23]}…")


async def run(ctx: Context) -> Check:
    return check_tls(await ctx.probe(), fingerprint=ctx.cfg.tls_fingerprint)
