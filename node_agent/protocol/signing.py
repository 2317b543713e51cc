"""The device-auth payload strings OpenClaw verifies (v3 preferred, v2 as the fallback).

The gateway rebuilds the same string from the ``connect`` params and checks our Ed25519
signature over its UTF-8 bytes; any difference (order, case, a missing empty field) is
``DEVICE_AUTH_SIGNATURE_INVALID``. The token slot is the first of ``auth.token``,
``auth.deviceToken``, ``auth.bootstrapToken`` that is set; a password is never signed.
"""

from __future__ import annotations


def _normalize_metadata(value: str | None) -> str:
    # The gateway trims and lowercases ASCII A-Z only (not Unicode case folding).
    if not value:
        return ""
    return value.strip().translate(_ASCII_LOWER)


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def device_auth_payload(
    *,
    version: int,
    device_id: str,
    client_id: str,
    client_mode: str,
    role: str,
    scopes: tuple[str, ...] | list[str],
    signed_at_ms: int,
    token: str,
    nonce: str,
    platform: str | None = None,
    device_family: str | None = None,
) -> str:
    fields = [
        f"v{version}",
        device_id,
        client_id,
        client_mode,
        role,
        ",".join(scopes),
        str(signed_at_ms),
        token,
        nonce,
    ]
    if version == 3:
        fields += [_normalize_metadata(platform), _normalize_metadata(device_family)]
    elif version != 2:
        raise ValueError(f"unsupported device-auth payload version {version}")
    return "|".join(fields)
