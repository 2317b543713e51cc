"""Text to speech by the gateway: ``talk.speak`` over the operator link.

OpenClaw's own apps speak replies this way, in the voice the gateway's Talk provider is
configured with (``talk.provider``: ElevenLabs, OpenAI, a local CLI such as espeak-ng...). The
method needs the ``operator.talk`` scope, which the operator link asks for; the node role cannot
call it. The answer is ``{audioBase64, mimeType, outputFormat, provider, ...}``: WAV is decoded
here, anything else (MP3 from most cloud providers) through ffmpeg when it is installed.

Refusals are typed by what they mean for the next reply: ``talk_unconfigured`` (no Talk provider
on the gateway) or a missing scope are said once and the chain falls through to the local
voice; the link being down just makes this backend unavailable until it is back.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import NodeAgentError
from .errors import TTSError
from .tts import SpokenAudio, convert_to_wav, decode_wav

log = logging.getLogger("node_agent.voice.tts")

#: Base64 of a reply's audio larger than this is refused (the gateway caps frames anyway).
MAX_AUDIO_B64 = 32 * 1024 * 1024


class TalkSpeakTTS:
    name = "talk.speak"

    def __init__(self, call: Callable[[str, Any], Awaitable[Any]], connected: Callable[[], bool]):
        """``call(method, params)`` makes an operator request (the operator link's ``call``, with
        its timeout); ``connected()`` says whether that link is up."""
        self._call = call
        self._connected = connected
        self.last_provider: str | None = None

    def available(self) -> bool:
        return self._connected()

    async def synthesize(self, text: str) -> SpokenAudio:
        try:
            answer = await self._call("talk.speak", {"text": text})
        except NodeAgentError as exc:
            raise TTSError(f"the gateway refused talk.speak: {exc.message}",
                           hint=_hint(exc.message)) from None
        if not isinstance(answer, dict) or not isinstance(answer.get("audioBase64"), str):
            raise TTSError("talk.speak answered without audioBase64")
        encoded = answer["audioBase64"]
        if len(encoded) > MAX_AUDIO_B64:
            raise TTSError(f"talk.speak returned more than {MAX_AUDIO_B64 // 2**20} MiB of audio")
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise TTSError("talk.speak returned audio that is not base64") from None
        provider = answer.get("provider") if isinstance(answer.get("provider"), str) else "?"
        self.last_provider = provider
        source = f"talk.speak ({provider})"
        mime = str(answer.get("mimeType") or "")
        if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
            return decode_wav(data, source)
        return await convert_to_wav(data, source, mime or "unknown audio")


def _hint(message: str) -> str | None:
    if "talk_unconfigured" in message or "not configured" in message:
        return "configure a Talk provider on the gateway (talk.provider), or leave replies to the local voice"
    if "scope" in message:
        return "the operator link needs the operator.talk scope (approve its role upgrade)"
    return None
