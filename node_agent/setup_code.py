"""OpenClaw setup codes: base64url JSON ``{url, bootstrapToken, expiresAtMs?, ...}``.

Printed by ``openclaw qr`` or shown as an ``oc-pair://<code>`` link in the Control UI. The
bootstrap token is single use and expires after about 10 minutes; it pairs this device on its
first connect (the gateway still asks a person to approve a plain Linux node).
"""

from __future__ import annotations

import base64
import binascii
import json
import time

import attrs

from .errors import ConfigError
from .secret import Secret


@attrs.frozen(kw_only=True)
class SetupCode:
    url: str
    bootstrap_token: Secret = attrs.field(repr=False)
    expires_at_ms: int | None = None
    tls_fingerprint: str | None = None

    def expired(self, now_ms: int | None = None) -> bool:
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        return self.expires_at_ms is not None and now_ms >= self.expires_at_ms


def decode_setup_code(text: str) -> SetupCode:
    code = text.strip()
    if code.startswith("oc-pair://"):
        code = code[len("oc-pair://"):]
    try:
        raw = base64.urlsafe_b64decode(code + "=" * (-len(code) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):  # RecursionError: JSON nested absurdly deep
        raise ConfigError("the setup code is not valid (expected the base64 text `openclaw qr` prints)") from None
    if not isinstance(data, dict):
        raise ConfigError("the setup code is not valid (not a JSON object)")
    url, token = data.get("url"), data.get("bootstrapToken")
    if not isinstance(url, str) or not isinstance(token, str) or not token:
        raise ConfigError("the setup code has no gateway url or bootstrap token")
    expires = data.get("expiresAtMs")
    fingerprint = data.get("tlsFingerprint") or data.get("fingerprint")
    return SetupCode(url=url, bootstrap_token=Secret(token),
                     expires_at_ms=expires if isinstance(expires, int) and not isinstance(expires, bool) else None,
                     tls_fingerprint=fingerprint if isinstance(fingerprint, str) else None)
