"""``node-agent doctor``: look at everything the agent depends on and say what to fix.

Each check returns one :class:`Check` (``ok`` / ``warn`` / ``fail`` / ``skip``, a one-line
detail, and for anything not ``ok`` a one-line fix). Checks never raise: an error the agent
would die of (a :class:`~node_agent.errors.ConfigError`, an unreadable identity) is what a check
*reports*. A check that needs something an earlier one could not provide (no config, no secret
store) is skipped and says so, rather than guessing.

Invariants:

* Read-only. Doctor never writes the secret-backend marker, never creates the state directory or
  an identity, never stores a token; opening a microphone for a moment to see whether it is busy
  is the only thing it "uses". (Reading ``secrets.json`` through the file store tightens a loose
  mode to 0600, exactly as the agent would on its next start; the check reports it.)
* Bounded. Every network, keyring, audio and subprocess step runs under a timeout, blocking
  calls in worker threads (abandoned on timeout where the call could hang forever: keyring,
  PortAudio).
* No secret reaches a detail: a device token is "present", never shown.
* Voice is optional: ``node_agent.voice``, ``sounddevice``/PortAudio and ``pyopen-wakeword`` are
  imported lazily; when they are missing the audio and wake-word checks are skipped with the
  reason, unless the ``[voice]`` table asks for voice, in which case missing pieces fail.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import hashlib
import json
import os
import shutil
import ssl
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence
from urllib.parse import urlsplit

import attrs
import trio

from .config import Config
from .errors import ConfigError, IdentityError, NodeAgentError, SecretStoreError


class Status(str, enum.Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@attrs.frozen
class Check:
    """One line of the report. ``fix`` is one line a person can act on (None when ``ok``)."""

    name: str
    status: Status
    detail: str
    fix: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status.value, "detail": self.detail, "fix": self.fix}


def ok(name: str, detail: str) -> Check:
    return Check(name, Status.OK, detail)


def warn(name: str, detail: str, fix: str | None) -> Check:
    return Check(name, Status.WARN, detail, fix)


def fail(name: str, detail: str, fix: str | None) -> Check:
    return Check(name, Status.FAIL, detail, fix)


def skip(name: str, detail: str, fix: str | None = None) -> Check:
    return Check(name, Status.SKIP, detail, fix)


@attrs.frozen(kw_only=True)
class DoctorOptions:
    #: TCP + TLS + WebSocket upgrade, together.
    gateway_timeout: float = 5.0
    #: How long to wait for the gateway to speak first. OpenClaw sends ``connect.challenge``
    #: within milliseconds of the upgrade; the documented dialect waits for us.
    challenge_window: float = 2.0
    #: Open each input device for a moment to find busy ones.
    probe_audio: bool = True
    audio_timeout: float = 10.0
    #: Installed service definitions to verify. ``None``: where ``service install`` puts them.
    unit_files: Sequence[Path] | None = None


# --- the runner -------------------------------------------------------------------------------


async def run_checks(load_config: Callable[[], Config], options: DoctorOptions = DoctorOptions()) -> list[Check]:
    """Run every check in a fixed order; ``load_config`` is called once, inside the first check."""
    checks: list[Check] = []
    config_check, config = check_config(load_config)
    checks.append(config_check)
    if config is None:
        why = "needs a configuration that loads"
        checks += [skip(name, why) for name in ("state dir", "secret store", "identity", "gateway", "tls",
                                                 "pairing")]
    else:
        checks.append(await trio.to_thread.run_sync(check_state_dir, config.state_dir))
        store_check, store = await check_secret_store(config)
        checks.append(store_check)
        checks.append(await check_identity(config.state_dir, store))
        checks += await check_gateway(config, timeout=options.gateway_timeout,
                                      challenge_window=options.challenge_window)
        checks.append(await check_pairing(config, store))
    voice = _voice_table(config.voice) if config is not None else {}
    status = await trio.to_thread.run_sync(_read_status, config.state_dir) if config is not None else None
    checks.append(await check_audio(voice, probe=options.probe_audio, timeout=options.audio_timeout))
    checks.append(await trio.to_thread.run_sync(check_wake_models, voice, status))
    checks.append(check_speech(config.adapter if config is not None else None))
    checks.append(await check_service(options.unit_files))
    return checks


def _voice_table(voice: Any) -> dict[str, Any]:
    """``Config.voice`` as a plain table, whether it is still the raw TOML dict or a settings object."""
    if isinstance(voice, dict):
        return voice
    return attrs.asdict(voice) if attrs.has(type(voice)) else {}


def exit_code(checks: Iterable[Check]) -> int:
    return 1 if any(c.status is Status.FAIL for c in checks) else 0


def report_json(checks: Sequence[Check]) -> dict[str, Any]:
    counts = {s.value: sum(1 for c in checks if c.status is s) for s in Status}
    return {"ok": exit_code(checks) == 0, "counts": counts, "checks": [c.to_json() for c in checks]}


_SYMBOLS = {Status.OK: "✓", Status.WARN: "!", Status.FAIL: "✗", Status.SKIP: "-"}
_ASCII = {Status.OK: "ok", Status.WARN: "!", Status.FAIL: "x", Status.SKIP: "-"}


def report_text(checks: Sequence[Check], *, encoding: str | None = "utf-8") -> str:
    """The table people read: symbol, name, detail, and the fix on the line below."""
    symbols = _SYMBOLS
    try:
        "".join(_SYMBOLS.values()).encode(encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        symbols = _ASCII  # a Windows console in cp1252 cannot print ✓
    width = max(len(c.name) for c in checks) if checks else 0
    lines = []
    for c in checks:
        lines.append(f"{symbols[c.status]:>2} {c.name:<{width}}  {c.detail}")
        if c.fix and c.status is not Status.OK:
            lines.append(f"   {'':<{width}}  fix: {c.fix}")
    counts = {s: sum(1 for c in checks if c.status is s) for s in Status}
    lines.append(f"{counts[Status.OK]} ok, {counts[Status.WARN]} warning(s), {counts[Status.FAIL]} failed, "
                 f"{counts[Status.SKIP]} skipped")
    return "\n".join(lines) + "\n"


# --- configuration and state directory --------------------------------------------------------


def check_config(load_config: Callable[[], Config]) -> tuple[Check, Config | None]:
    try:
        config = load_config()
    except ConfigError as exc:
        fix = exc.hint or "correct the configuration file, flag or variable named above"
        return fail("config", exc.message, fix), None
    where = f"{config.config_file}" if config.config_file else "no config file (defaults, environment, flags)"
    return ok("config", f"{where}; gateway {config.gateway_url} (from {config.gateway_url_source})"), config


def _write_probe(directory: Path) -> None:
    """Create and remove a file in ``directory``; raises OSError if that is not possible.
    Not ``os.access``: it answers for the real uid and knows nothing of read-only mounts."""
    fd, name = tempfile.mkstemp(prefix=".doctor-", dir=directory)
    os.close(fd)
    os.unlink(name)


def check_state_dir(state_dir: Path) -> Check:
    name = "state dir"
    try:
        st = state_dir.stat()
    except FileNotFoundError:
        return warn(name, f"{state_dir} does not exist yet (the first start creates it)",
                    "run `node-agent pair` (a system service keeps its state in /var/lib/node-agent: "
                    "pass --state-dir /var/lib/node-agent to look at that one)")
    except OSError as exc:
        return fail(name, f"cannot look at {state_dir}: {exc.strerror}",
                    f"make {state_dir.parent} accessible to the user the agent runs as")
    if not stat.S_ISDIR(st.st_mode):
        return fail(name, f"{state_dir} exists but is not a directory",
                    f"move {state_dir} aside or pick another --state-dir")
    try:
        _write_probe(state_dir)
    except OSError as exc:
        return fail(name, f"{state_dir} is not writable: {exc.strerror or type(exc).__name__}",
                    f"chown it to the user the agent runs as (`sudo chown -R $USER {state_dir}`), "
                    "or pick another --state-dir")
    mode = stat.S_IMODE(st.st_mode)
    if os.name == "posix" and mode & 0o022:
        return fail(name, f"{state_dir} has mode {mode:04o}: others can replace the identity and tokens in it",
                    f"chmod 700 {state_dir}")
    detail = f"{state_dir} (mode {mode:04o}, writable)" if os.name == "posix" else f"{state_dir} (writable)"
    return ok(name, detail)


# --- secret store -----------------------------------------------------------------------------


async def check_secret_store(config: Config) -> tuple[Check, Any]:
    """Which store the agent would use, without choosing one for it (no marker is written)."""
    from .secrets import MARKER_FILE, SECRETS_FILE, FileStore, KeyringStore, MemoryStore, keyring_service
    from .secrets.selection import _read_marker

    name = "secret store"
    state_dir = config.state_dir
    secrets_path = state_dir / SECRETS_FILE
    marker = state_dir / MARKER_FILE
    backend = config.secret_backend

    if backend == "memory":
        return warn(name, "memory: the identity and tokens are forgotten when the agent exits",
                    "use --secret-backend auto (or file/keyring) for a device that should stay paired"), MemoryStore()

    async def probe_keyring() -> tuple[KeyringStore, SecretStoreError | None]:
        store = KeyringStore(keyring_service(state_dir.resolve()), config.secret_timeout)
        try:
            await store.probe()
        except SecretStoreError as exc:
            return store, exc
        return store, None

    async def file_check(why: str) -> tuple[Check, Any]:
        store = FileStore(secrets_path)
        loose = None
        with contextlib.suppress(OSError):
            mode = stat.S_IMODE(secrets_path.stat().st_mode)
            if os.name == "posix" and mode & 0o077:
                loose = mode
        try:
            await store.get("doctor-probe")  # parses the whole file; the key need not exist
        except SecretStoreError as exc:
            return fail(name, f"file store ({why}): {exc.message}",
                        exc.hint or f"restore {secrets_path} from a backup"), None
        exists = secrets_path.exists()
        detail = f"file store {secrets_path}{'' if exists else ', empty'} ({why})"
        if loose is not None:
            return warn(name, f"{detail}: it had mode {loose:04o}, readable by others; tightened to 0600",
                        "check who could have read it; rotate the device token if in doubt "
                        "(`openclaw devices rotate`)"), store
        return ok(name, detail), store

    if backend == "file":
        return await file_check("--secret-backend file")
    if backend == "keyring":
        store, error = await probe_keyring()
        if error is not None:
            return fail(name, f"keyring (--secret-backend keyring): {error.message}",
                        error.hint or "unlock the OS keyring, or use --secret-backend file"), None
        return ok(name, f"keyring, service {store.service} (answers within {config.secret_timeout:g} s)"), store

    try:
        chosen = await trio.to_thread.run_sync(_read_marker, marker)
    except SecretStoreError as exc:
        return fail(name, exc.message, exc.hint or f"write 'keyring' or 'file' into {marker}"), None
    if chosen == "file":
        return await file_check(f"chosen earlier, per {marker}")
    if chosen == "keyring":
        store, error = await probe_keyring()
        if error is not None:
            return fail(name, f"the identity is in the OS keyring (per {marker}), which does not answer: "
                              f"{error.message}",
                        "unlock the keyring or start its service for this user; deleting the marker would "
                        "mean a new identity and pairing again"), None
        return ok(name, f"keyring, service {store.service} (chosen earlier, per {marker})"), store
    if secrets_path.exists():
        return await file_check(f"{SECRETS_FILE} exists; the next start records that choice")
    store, error = await probe_keyring()
    if error is None:
        return ok(name, "keyring answers: the first start will choose it (nothing chosen yet)"), store
    return await file_check(f"the first start will choose it: {error.message}")


# --- identity ---------------------------------------------------------------------------------


async def check_identity(state_dir: Path, store: Any) -> Check:
    """``identity.json`` and the key in the store must agree; every mismatch fails closed."""
    from .identity import IDENTITY_FILE, DeviceIdentity, read_record
    from .secrets.base import DEVICE_KEY

    name = "identity"
    reset = "restore the state dir or keyring from a backup; to start over: `node-agent unpair --reset-identity`"
    if store is None:
        return skip(name, "needs a working secret store")
    try:
        record = await trio.to_thread.run_sync(read_record, state_dir)
    except IdentityError as exc:
        return fail(name, exc.message, exc.hint or reset)
    try:
        secret = await store.get(DEVICE_KEY)
    except NodeAgentError as exc:
        return fail(name, f"cannot read the device key from the {store.name} store: {exc.message}",
                    exc.hint or "make the secret store readable (see the secret store line)")
    if record is None and secret is None:
        return warn(name, "no identity yet (the first start creates one)", "run `node-agent pair`")
    try:
        identity = DeviceIdentity.from_secret(secret) if secret is not None else None
    except IdentityError as exc:
        return fail(name, f"{exc.message} ({store.name} store)", reset)
    if record is None:
        assert identity is not None
        return warn(name, f"device key {identity.device_id[:12]}… is in the {store.name} store but "
                          f"{IDENTITY_FILE} is missing (the next start rebuilds it from the key)",
                    "start the agent once, or run `node-agent pair`")
    if identity is None:
        return fail(name, f"{IDENTITY_FILE} names device {record.device_id[:12]}… but its private key is not in "
                          f"the {store.name} store; the agent refuses to start rather than make a new identity",
                    "unlock the keyring or restore the secrets file; to start over: "
                    "`node-agent unpair --reset-identity`")
    if identity.device_id != record.device_id:
        return fail(name, f"the key in the {store.name} store ({identity.device_id[:12]}…) does not match "
                          f"{IDENTITY_FILE} ({record.device_id[:12]}…); the agent refuses to guess", reset)
    return ok(name, f"device {identity.fingerprint} ({record.platform}/{record.device_family}), key in the "
                    f"{store.name} store")


# --- gateway, TLS -----------------------------------------------------------------------------


def _colon_hex(digest: str) -> str:
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


async def check_gateway(config: Config, *, timeout: float = 5.0, challenge_window: float = 2.0) -> list[Check]:
    """``[gateway, tls]``: TCP, then TLS for ``wss://``, then the upgrade, then who speaks first."""
    import trio_websocket

    from .protocol.autodetect import choose_dialect

    url = config.gateway_url
    parts = urlsplit(url)
    host = parts.hostname or ""
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    where = f"{host}:{port}"
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    tls_skipped = skip("tls", "plain ws:// (allowed for loopback and private networks)") if not secure else None
    unreachable_fix = "is the gateway running (`openclaw gateway status`)? check the host and port in the gateway URL"

    start = trio.current_time()
    try:
        with trio.fail_after(timeout):
            stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
    except trio.TooSlowError:
        return [fail("gateway", f"no TCP connection to {where} within {timeout:g} s",
                     "check the host, and any firewall between here and the gateway"),
                tls_skipped or skip("tls", "not reached")]
    except OSError as exc:
        return [fail("gateway", f"cannot reach {where}: {_connect_reason(exc)}", unreachable_fix),
                tls_skipped or skip("tls", "not reached")]

    async with stream:
        tls_check = tls_skipped
        if secure:
            tls_check, stream = await _tls_handshake(stream, config, host, timeout - (trio.current_time() - start))
            if stream is None:
                return [skip("gateway", f"TCP to {where} works; not tried further because TLS failed"), tls_check]
        assert tls_check is not None
        host_header = host if port in (80, 443) else where
        try:
            first, closed, upgraded_at, heard_at = await _websocket_probe(
                stream, host_header, resource, deadline=start + timeout, window=challenge_window)
        except trio.TooSlowError:
            return [fail("gateway", f"TCP to {where} works but no WebSocket upgrade within {timeout:g} s",
                         "check that the URL points at the gateway's port, not another service"), tls_check]
        except trio_websocket.ConnectionRejected as exc:
            return [fail("gateway", f"{where} refused the WebSocket upgrade (HTTP {exc.status_code})",
                         "check the URL's port and path: is this the gateway?"), tls_check]
        except (trio_websocket.HandshakeError, trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            return [fail("gateway", f"WebSocket upgrade with {where} failed ({type(exc).__name__})",
                         "check the URL's port and path: is this the gateway?"), tls_check]
    upgraded_ms = (upgraded_at - start) * 1000

    protocol = config.protocol
    if closed is not None:
        code = closed.reason.code if closed.reason is not None else None
        return [warn("gateway", f"{where} upgraded to WebSocket, then closed it at once (code {code}) without a word",
                     "check that the URL points at an OpenClaw gateway"), tls_check]
    if first is not None and _is_challenge(first):
        detail = (f"OpenClaw gateway at {url}: connect.challenge {(heard_at - start) * 1000:.0f} ms after "
                  "connecting")
        if protocol == "jsonrpc":
            return [warn("gateway", f"{detail}, but gateway.protocol is \"jsonrpc\"",
                         'set gateway.protocol = "openclaw" (or "auto")'), tls_check]
        return [ok("gateway", detail), tls_check]
    if first is None or choose_dialect(first) == "jsonrpc":
        what = ("said nothing" if first is None else "sent a non-OpenClaw frame first")
        detail = (f"WebSocket at {url} (upgrade in {upgraded_ms:.0f} ms) {what} within {challenge_window:g} s: no "
                  "connect.challenge")
        if protocol == "jsonrpc":
            return [ok("gateway", f"{detail}, as the documented dialect does (protocol \"jsonrpc\")"), tls_check]
        if protocol == "auto":
            return [ok("gateway", f"{detail}; \"auto\" will speak the documented dialect"), tls_check]
        return [warn("gateway", f"{detail}: not an OpenClaw gateway, or one speaking the documented dialect",
                     'if it speaks the documented (JSON-RPC) dialect set gateway.protocol = "jsonrpc" or "auto"; '
                     "otherwise check the URL and port"), tls_check]
    return [warn("gateway", f"{where} sent an OpenClaw-style frame first, but not connect.challenge",
                 "check the gateway version (node-agent needs protocol 3 or 4)"), tls_check]


async def _websocket_probe(stream: trio.abc.Stream, host_header: str, resource: str, *, deadline: float,
                           window: float) -> tuple[str | bytes | None, Any, float, float]:
    """Upgrade ``stream``, then wait ``window`` s for the gateway to speak first.

    Returns ``(first frame or None, ConnectionClosed or None, when the upgrade completed, when the
    wait ended)``.
    trio-websocket's reader task raises handshake errors (an HTTP 404) into the nursery, so they
    arrive here as an exception group; the first real error in it is raised on its own.
    """
    import trio_websocket

    from .transport import MAX_MESSAGE_SIZE

    first: str | bytes | None = None
    closed: trio_websocket.ConnectionClosed | None = None
    try:
        async with trio.open_nursery() as nursery:
            with trio.fail_at(deadline):
                ws = await trio_websocket.wrap_client_stream(nursery, stream, host_header, resource,
                                                             message_queue_size=1, max_message_size=MAX_MESSAGE_SIZE)
            upgraded_at = trio.current_time()
            with trio.move_on_after(window):
                try:
                    first = await ws.get_message()
                except trio_websocket.ConnectionClosed as exc:
                    closed = exc
            heard_at = trio.current_time()
            with trio.move_on_after(1):
                await ws.aclose()
            nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        real = [e for e in leaves if not isinstance(e, trio.Cancelled)]
        if not real:
            raise
        raise real[0] from None
    return first, closed, upgraded_at, heard_at


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


def _connect_reason(exc: OSError) -> str:
    """Trio's ``open_tcp_stream`` raises "all attempts ... failed" with the real errors (one per
    address) in an exception group as the cause; their strerror is what a person needs."""
    cause = exc.__cause__
    errors = list(cause.exceptions) if isinstance(cause, BaseExceptionGroup) else [cause or exc]
    # trio's strerror repeats the address ("Error connecting to (...): Connection refused").
    reasons = dict.fromkeys((getattr(e, "strerror", None) or str(e)).rsplit(": ", 1)[-1] for e in errors)
    return ", ".join(reasons)


def _is_challenge(frame: str | bytes) -> bool:
    try:
        obj = json.loads(frame)
    except (ValueError, RecursionError):
        return False
    payload = obj.get("payload") if isinstance(obj, dict) else None
    return (isinstance(obj, dict) and obj.get("type") == "event" and obj.get("event") == "connect.challenge"
            and isinstance(payload, dict) and isinstance(payload.get("nonce"), str))


async def _tls_handshake(stream: trio.abc.Stream, config: Config, host: str,
                         timeout: float) -> tuple[Check, trio.SSLStream | None]:
    from .transport import normalize_fingerprint, ssl_context_for

    name = "tls"
    pin = None
    if config.tls_fingerprint:
        try:
            pin = normalize_fingerprint(config.tls_fingerprint)
        except ConfigError as exc:
            return fail(name, f"tls_fingerprint is malformed: {exc.message}",
                        "set it to the certificate's SHA-256 (64 hex digits, colons allowed)"), None
    try:
        ctx = ssl_context_for(config.gateway_url, ca_file=config.tls_ca_file, fingerprint=config.tls_fingerprint)
    except (OSError, ssl.SSLError) as exc:
        return fail(name, f"cannot load the CA file {config.tls_ca_file}: {exc}",
                    "point tls_ca_file (--tls-ca) at a readable PEM bundle"), None
    assert ctx is not None
    ssl_stream = trio.SSLStream(stream, ctx, server_hostname=host)
    try:
        with trio.fail_after(max(0.1, timeout)):
            await ssl_stream.do_handshake()
    except trio.TooSlowError:
        return fail(name, f"no TLS handshake within {timeout:g} s",
                    "check that the gateway serves TLS on this port (else use ws://)"), None
    except (trio.BrokenResourceError, OSError, ssl.SSLError) as exc:
        # Trio wraps the SSLError (the part worth showing) in BrokenResourceError.
        cause = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) else exc
        if isinstance(cause, ssl.SSLCertVerificationError):
            return fail(name, f"the gateway's certificate does not verify: {cause.verify_message}",
                        "give its CA with --tls-ca (tls_ca_file), or pin the certificate with tls_fingerprint"), None
        reason = getattr(cause, "reason", None) or type(cause).__name__
        return fail(name, f"TLS handshake failed: {reason}",
                    "check that the gateway serves TLS on this port (else use ws://)"), None
    der = ssl_stream.getpeercert(binary_form=True) or b""
    actual = hashlib.sha256(der).hexdigest()
    if pin is not None:
        if actual != pin:
            with trio.move_on_after(1):
                await ssl_stream.aclose()
            return fail(name, f"certificate SHA-256 {_colon_hex(actual)[:23]}… does not match the pin "
                              f"{_colon_hex(pin)[:23]}…; the agent refuses to connect",
                        f"if the gateway's certificate was replaced on purpose (check on the gateway host), set "
                        f"tls_fingerprint = \"{_colon_hex(actual)}\""), None
        return ok(name, f"certificate matches the pinned SHA-256 {_colon_hex(pin)[:23]}…"), ssl_stream
    cert = ssl_stream.getpeercert() or {}
    expires = cert.get("notAfter")
    detail = f"certificate verified for {host}" + (f" (expires {expires})" if expires else "")
    if expires:
        left = ssl.cert_time_to_seconds(expires) - time.time()
        if left < 14 * 86400:
            return warn(name, f"{detail}: {max(0, left) / 86400:.0f} day(s) left",
                        "renew the gateway's certificate"), ssl_stream
    return ok(name, f"{detail}; SHA-256 {_colon_hex(actual)[:23]}…"), ssl_stream


# --- pairing ----------------------------------------------------------------------------------


def _read_status(state_dir: Path) -> dict[str, Any] | None:
    from .agent.status import read_status, to_json

    status = read_status(state_dir)
    return to_json(status) if status is not None else None


async def check_pairing(config: Config, store: Any) -> Check:
    from .secrets.base import device_token_key

    name = "pairing"
    if store is None:
        return skip(name, "needs a working secret store")
    url = config.gateway_url
    try:
        token = await store.get(device_token_key(url))
    except NodeAgentError as exc:
        return fail(name, f"cannot read the device token: {exc.message}", exc.hint)
    status = await trio.to_thread.run_sync(_read_status, config.state_dir)
    notes: list[str] = []
    level, fix = Status.OK, None

    def worse(new: Status, new_fix: str | None) -> None:
        nonlocal level, fix
        order = [Status.OK, Status.SKIP, Status.WARN, Status.FAIL]
        if order.index(new) > order.index(level):
            level, fix = new, new_fix

    if token is None:
        credential = (config.shared_token is not None or config.password is not None)
        notes.append(f"not paired with {url}: no device token in the {store.name} store")
        worse(Status.WARN, "run `node-agent pair` and approve it on the gateway "
                           "(`openclaw devices approve <requestId>`)"
              + ("" if credential else "; it needs the gateway token first: OPENCLAW_GATEWAY_TOKEN or --token-file,"
                                         " or pair with --setup-code"))
    else:
        notes.append(f"device token stored for {url}")

    if status is not None:
        about = status.get("gateway")
        if about and about != url:
            notes.append(f"last status is about another gateway ({about})")
        else:
            state = status.get("state")
            notes.append(f"last state: {state}{' (agent not running)' if status.get('stale') else ''}")
            pairing = status.get("pairing") or {}
            if state == "error":
                notes.append(f"last error: {status.get('lastError')}")
                worse(Status.FAIL, status.get("hint") or "fix the error above, then start the agent again")
            elif state == "pairing":
                request = pairing.get("requestId") or "<requestId>"
                if pairing.get("code"):
                    notes.append(f"waiting for code {pairing['code']} to be entered on the gateway")
                    worse(Status.WARN, "enter the code on the gateway")
                else:
                    notes.append(f"waiting for approval (request {request})")
                    worse(Status.WARN, f"on the gateway host: openclaw devices approve {request}")
            elif status.get("lastError") and state in ("waiting", "connecting", "stopped"):
                notes.append(f"last error: {status['lastError']}")
                worse(Status.WARN, status.get("hint") or "see the gateway line above; the agent retries by itself")
            if status.get("surface") == "pending":
                notes.append("node commands awaiting approval")
                worse(Status.WARN, "on the gateway host: openclaw nodes pending; openclaw nodes approve <requestId>")
            elif status.get("surface") == "unconfirmed":
                notes.append("this gateway does not tell the node whether its commands are approved "
                             "(check `openclaw nodes pending`)")
            if status.get("serverVersion") and status.get("dialect") == "openclaw":
                from .protocol.releases import profile_for

                profile = profile_for(status["serverVersion"])
                notes.append(f"gateway openclaw {status['serverVersion']}: more node commands are allowed with "
                             f"{profile.allowlist_key}")
            if status.get("tokenSaveError"):
                notes.append(f"the device token could not be saved: {status['tokenSaveError']}")
                worse(Status.WARN, "make the secret store writable (see the secret store line)")
    return Check(name, level, "; ".join(notes), fix)


# --- voice: audio devices, wake-word models ---------------------------------------------------


def voice_wanted(voice: dict[str, Any]) -> bool:
    """Whether the ``[voice]`` table turns voice on (``enabled = true`` and a mode other than
    ``disabled``, as :class:`node_agent.voice.settings.VoiceSettings` reads it). Then missing
    voice pieces fail instead of being skipped."""
    return voice.get("enabled") is True and voice.get("mode", "voice-wake") != "disabled"


def _configured(devices: list[dict[str, Any]], wanted: str) -> list[dict[str, Any]]:
    """The inputs ``voice.device`` names, as PortAudio would pick them: an index, else a
    case-insensitive name substring."""
    if wanted.strip().isdigit():
        return [d for d in devices if d["index"] == int(wanted)]
    return [d for d in devices if wanted.lower() in str(d["name"]).lower()]


def _probe_inputs(audio: Any, devices: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Open each input device for a moment (blocking). Returns (busy, unusable) descriptions."""
    sd = audio.import_sounddevice()
    busy: list[str] = []
    unusable: list[str] = []
    for dev in devices:
        label = f"#{dev['index']} {dev['name']}"
        try:
            stream = sd.InputStream(device=dev["index"], channels=1, dtype="int16",
                                    samplerate=dev.get("default_samplerate") or None)
            try:
                stream.start()
                stream.stop()
            finally:
                stream.close()
        except Exception as exc:  # PortAudioError, ValueError; any failure is the finding
            text = str(exc)
            if any(s in text.lower() for s in ("unavailable", "busy", "-9985")):
                busy.append(label)
            else:
                unusable.append(f"{label} ({text[:80]})")
    return busy, unusable


async def check_audio(voice: dict[str, Any], *, probe: bool = True, timeout: float = 10.0) -> Check:
    name = "audio"
    wanted = voice_wanted(voice)
    missing = fail if wanted else skip  # voice support absent
    problem = fail if wanted else warn  # present, but this host's audio is not right
    try:
        from .voice import audio
        from .voice.errors import AudioDeviceError, VoiceUnavailable
    except ImportError as exc:
        return missing(name, f"voice support is not part of this install ({exc.name or exc})",
                       "install a node-agent with voice support")
    if voice.get("wav"):
        wav = Path(str(voice["wav"])).expanduser()
        if not wav.is_file():
            return problem(name, f"voice.wav {wav} does not exist",
                                              "point voice.wav at a 16 kHz mono WAV file, or remove it")
        return ok(name, f"voice reads {wav} instead of a microphone (voice.wav)")
    try:
        with trio.fail_after(timeout):
            devices = await trio.to_thread.run_sync(audio.list_devices, abandon_on_cancel=True)
    except trio.TooSlowError:
        return fail(name, f"listing audio devices did not finish within {timeout:g} s",
                    "check the sound system (`arecord -l`); a hung PulseAudio/PipeWire can cause this")
    except VoiceUnavailable as exc:
        return missing(name, exc.message, exc.hint)
    except AudioDeviceError as exc:
        return problem(name, exc.message, exc.hint or "check the sound system (`arecord -l`)")
    if not devices:
        return problem(
            name, "no input devices found",
            "plug in a microphone; check `arecord -l` and that the agent's user is in the 'audio' group")
    names = ", ".join(f"#{d['index']} {d['name']}{' (default)' if d.get('default') else ''}" for d in devices)
    if voice.get("device") is not None and not _configured(devices, str(voice["device"])):
        return problem(
            name, f"voice.device {voice['device']!r} matches no input device (inputs: {names})",
            "set voice.device to one of the inputs listed (an index or part of its name), or remove it")
    if not probe:
        return ok(name, f"{len(devices)} input device(s): {names}")
    try:
        with trio.fail_after(timeout):
            busy, unusable = await trio.to_thread.run_sync(functools.partial(_probe_inputs, audio, devices),
                                                           abandon_on_cancel=True)
    except trio.TooSlowError:
        return warn(name, f"{len(devices)} input device(s): {names}; opening them did not finish within "
                          f"{timeout:g} s",
                    "a device may be held by another program (`fuser -v /dev/snd/*`)")
    except (VoiceUnavailable, AudioDeviceError) as exc:
        return warn(name, exc.message, exc.hint)
    if busy or unusable:
        parts = [f"busy: {', '.join(busy)}"] if busy else []
        parts += [f"cannot open: {'; '.join(unusable)}"] if unusable else []
        everything = len(busy) + len(unusable) == len(devices)
        return (fail if wanted and everything else warn)(
            name, f"{len(devices)} input device(s): {names}; {'; '.join(parts)}",
            "another program holds the microphone (`fuser -v /dev/snd/*`; stop it, or use the 'default'/'pulse' "
            "device, which shares)")
    return ok(name, f"{len(devices)} input device(s), all free: {names}")


def check_wake_models(voice: dict[str, Any], status: dict[str, Any] | None) -> Check:
    """Bundled models importable and loadable; the custom folder; the gateway's triggers covered."""
    name = "wake word"
    wanted = voice_wanted(voice)
    missing = fail if wanted else skip
    try:
        from .voice import wake
    except ImportError as exc:
        return missing(name, f"voice support is not part of this install ({exc.name or exc})",
                       "install a node-agent with voice support")
    try:
        import pyopen_wakeword
    except ImportError:
        return missing(name, "pyopen-wakeword is not installed", "pip install 'node-agent[voice]'")
    except OSError as exc:
        return missing(name, f"pyopen-wakeword cannot load: {exc}",
                       "reinstall it: pip install --force-reinstall pyopen-wakeword")
    models_dir = Path(pyopen_wakeword.__file__).parent / "models"
    needed = [*sorted(set(wake.BUILTIN_MODELS.values())), "melspectrogram", "embedding_model"]
    absent = [m for m in needed if not (models_dir / f"{m}.tflite").is_file()]
    if absent:
        return fail(name, f"pyopen-wakeword is missing bundled models: {', '.join(absent)} (in {models_dir})",
                    "reinstall it: pip install --force-reinstall pyopen-wakeword")
    try:
        features = pyopen_wakeword.OpenWakeWordFeatures.from_builtin()
        model = pyopen_wakeword.OpenWakeWord.from_builtin(pyopen_wakeword.Model(needed[0]))
        del model, features
    except Exception as exc:  # the TFLite runtime is a native library: anything can happen
        return fail(name, f"the bundled models do not load: {type(exc).__name__}: {exc}",
                    "reinstall pyopen-wakeword for this platform (it ships the TFLite runtime)")

    notes = [f"{len(wake.BUILTIN_MODELS)} bundled models load ({', '.join(sorted(wake.BUILTIN_MODELS))})"]
    level, fix = Status.OK, None
    custom = voice.get("custom_model_dir")
    if custom:
        folder = Path(str(custom)).expanduser()
        if not folder.is_dir():
            notes.append(f"custom model folder {folder} does not exist")
            level, fix = Status.WARN, f"create {folder} and put <phrase>.tflite models in it, or remove the setting"
        else:
            files = sorted(folder.glob("*.tflite"))
            good = [p for p in files if _is_tflite(p)]
            bad = [p.name for p in files if p not in good]
            notes.append(f"custom folder {folder}: {len(good)} model(s)"
                         + (f" ({', '.join(p.stem for p in good)})" if good else ""))
            if bad:
                notes.append(f"not TFLite models, ignored: {', '.join(bad)}")
                level, fix = Status.WARN, "replace them with openWakeWord .tflite models"
    # The gateway's phrases (as last seen by the agent) plus this node's own, as the pipeline uses them.
    gateway = (status or {}).get("voiceWakeTriggers")
    local = voice.get("local_triggers") or []
    triggers = [*(gateway if isinstance(gateway, list) else []), *(local if isinstance(local, list) else [])]
    if triggers:
        resolution = wake.resolve_triggers(triggers, wake.available_models(custom or None))
        if resolution.unsupported:
            notes.append(f"gateway triggers without a model: {', '.join(resolution.unsupported)}")
            if not resolution.mapping:
                level = Status.WARN
                fix = fix or ("set a trigger that has a model (`openclaw` voicewake settings), e.g. \"hey jarvis\", "
                              "or add <phrase>.tflite to the custom model folder")
        if resolution.mapping:
            notes.append(f"triggers with a model: {', '.join(resolution.mapping)}")
    return Check(name, level, "; ".join(notes), fix)


def _is_tflite(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(8)[4:8] == b"TFL3"
    except OSError:
        return False


# --- speech output ----------------------------------------------------------------------------


_SPEECH = {
    "linux": ("espeak-ng", "sudo apt-get install espeak-ng"),
    "pi": ("espeak-ng", "sudo apt-get install espeak-ng"),
    "macos": ("say", "`say` ships with macOS: check PATH (/usr/bin)"),
    "windows": ("powershell.exe", "Windows PowerShell 5.1 ships with Windows: check PATH"),
}


def check_speech(adapter: str | None) -> Check:
    name = "speech"
    if adapter is None:
        from .adapters import detect_adapter_name

        adapter = detect_adapter_name()
    program, install = _SPEECH.get(adapter, _SPEECH["linux"])
    path = shutil.which(program)
    if path is None:
        return warn(name, f"{program} not found: pairing codes and replies cannot be spoken ({adapter} adapter)",
                    install)
    return ok(name, f"{program} at {path}")


# --- service definition -----------------------------------------------------------------------


def installed_unit_files() -> list[tuple[Path, bool]]:
    """``(path, user_scope)`` of the systemd units ``service install`` would have written."""
    from .service.manage import ServiceManager
    from .service.spec import Platform, Scope

    found = []
    for scope in (Scope.SYSTEM, Scope.USER):
        path = ServiceManager.from_environ(Platform.SYSTEMD, scope).definition_path()
        if path.is_file():
            found.append((path, scope is Scope.USER))
    return found


async def check_service(unit_files: Sequence[Path] | None = None) -> Check:
    name = "service"
    if not sys.platform.startswith("linux"):
        return skip(name, f"unit verification is for systemd; not checked on {sys.platform}")
    if unit_files is None:
        units = installed_unit_files()
    else:
        # A unit under a systemd/user directory is verified in user mode.
        units = [(Path(p), "user" in Path(p).parts) for p in unit_files if Path(p).is_file()]
    if not units:
        return skip(name, "no systemd unit installed", "to run at boot: `sudo node-agent service install` "
                                                       "(or `node-agent service install --user`)")
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return skip(name, f"{', '.join(str(p) for p, _ in units)} installed; systemd-analyze is not available to "
                          "verify it")
    findings = [(path, await _verify_unit(analyze, path, user)) for path, user in units]
    problems = [(path, found) for path, found in findings if found is not None]
    if problems:
        level = Status.FAIL if any(status is Status.FAIL for _, (status, _) in problems) else Status.WARN
        user_flag = " --user" if all(user for _, user in units) else ""
        return Check(name, level, "; ".join(f"{path}: {text}" for path, (_, text) in problems),
                     f"regenerate it: `node-agent service install{user_flag}` (`node-agent service print` shows "
                     "what it would write)")
    return ok(name, f"{', '.join(str(p) for p, _ in units)}: systemd-analyze verify passes")


async def _verify_unit(analyze: str, path: Path, user: bool) -> tuple[Status, str] | None:
    """``None`` when verify is happy; else how bad, and the first line that names our unit."""
    from .childenv import helper_env

    env = helper_env()
    with tempfile.TemporaryDirectory(prefix="node-agent-doctor-") as runtime:
        if user and not env.get("XDG_RUNTIME_DIR"):
            env["XDG_RUNTIME_DIR"] = runtime  # a user-mode analysis needs one, even offline
        argv = [analyze, *(["--user"] if user else []), "verify", str(path)]
        try:
            with trio.fail_after(30):
                result = await trio.run_process(argv, env=env, check=False, capture_stdout=True,
                                                capture_stderr=True, stdin=subprocess.DEVNULL)
        except trio.TooSlowError:
            return Status.WARN, "systemd-analyze verify did not finish within 30 s"
        except OSError as exc:
            return Status.WARN, f"cannot run systemd-analyze: {exc.strerror}"
    lines = [line.strip() for line in (result.stderr + result.stdout).decode(errors="replace").splitlines()
             if line.strip()]
    # verify also complains about other units it happens to load; only lines about ours count.
    ours = [line for line in lines if path.name in line or str(path) in line]
    if result.returncode != 0:
        return Status.FAIL, " / ".join((ours or lines or [f"systemd-analyze verify exited {result.returncode}"])[:2])
    if ours:
        return Status.WARN, " / ".join(ours[:2])
    return None
