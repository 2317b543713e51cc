"""Which session a trigger's transcript goes to: OpenClaw's ``voicewake.routing``.

The gateway keeps one routing table (``voicewake.routing.changed {config}``, also pushed as a
connect snapshot) and leaves the resolving to the node::

    {version: 1, defaultTarget: {mode: "current"} | {agentId} | {sessionKey},
     routes: [{trigger, target}] (<= 32), updatedAtMs}

A trigger is matched by the gateway's own normalisation (lower case; punctuation and symbols
stripped from both ends of each word; whitespace collapsed) -- stricter than the wake-word
list's, and not our model matching (:func:`~.wake.normalize_phrase`), so both are kept apart.
A target becomes the ``sessionKey`` of ``voice.transcript``:

* ``{sessionKey}`` -- that key, as given;
* ``{agentId}`` -- that agent's main session, ``agent:<id>:main`` (the gateway's default main
  key; a gateway with another ``session.mainKey`` should route by ``sessionKey``);
* ``{mode: "current"}`` -- the node's own ``[voice] session_key``, or none (the gateway then picks
  its main session).

Parsing is lenient like the gateway's own (an entry it would drop is dropped, with the reason
kept for ``status``); resolving is pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

MAX_ROUTES = 32
_EDGE = re.compile(r"^[\W_]+|[\W_]+$", re.UNICODE)


def normalize_route_trigger(text: str) -> str:
    """The gateway's ``normalizeVoiceWakeTriggerWord``: ``"Hey, Bot!!"`` -> ``"hey bot"``."""
    words = (_EDGE.sub("", w) for w in text.lower().split())
    return " ".join(w for w in words if w)


@attrs.frozen
class Target:
    session_key: str | None = None
    agent_id: str | None = None  # at most one of the two; neither: "current"

    @property
    def mode(self) -> str:
        return "sessionKey" if self.session_key else "agentId" if self.agent_id else "current"

    def to_wire(self) -> dict[str, str]:
        if self.session_key:
            return {"sessionKey": self.session_key}
        if self.agent_id:
            return {"agentId": self.agent_id}
        return {"mode": "current"}


CURRENT = Target()


def _target(value: Any) -> Target | None:
    if not isinstance(value, Mapping):
        return None
    if value.get("mode") == "current":
        return CURRENT
    agent = value.get("agentId").strip() if isinstance(value.get("agentId"), str) else ""
    session = value.get("sessionKey").strip() if isinstance(value.get("sessionKey"), str) else ""
    if agent and not session:
        return Target(agent_id=agent.lower())
    if session and not agent:
        return Target(session_key=session)
    return None


@attrs.frozen
class VoiceWakeRouting:
    default: Target = CURRENT
    routes: tuple[tuple[str, Target], ...] = ()  # (normalised trigger, target), first wins
    updated_at_ms: int = 0
    dropped: int = 0  # entries the gateway would have dropped too

    @classmethod
    def from_payload(cls, payload: Any) -> VoiceWakeRouting:
        """From ``voicewake.routing.changed``'s payload (``{config: {...}}``) or the config itself."""
        config = payload.get("config", payload) if isinstance(payload, Mapping) else None
        if not isinstance(config, Mapping):
            return cls()
        routes: list[tuple[str, Target]] = []
        dropped = 0
        raw = config.get("routes")
        for entry in raw if isinstance(raw, list) else []:
            trigger = entry.get("trigger") if isinstance(entry, Mapping) else None
            target = _target(entry.get("target")) if isinstance(entry, Mapping) else None
            normalized = normalize_route_trigger(trigger) if isinstance(trigger, str) else ""
            if not normalized or target is None or len(routes) >= MAX_ROUTES:
                dropped += 1
                continue
            routes.append((normalized, target))
        updated = config.get("updatedAtMs")
        return cls(default=_target(config.get("defaultTarget")) or CURRENT, routes=tuple(routes),
                   updated_at_ms=int(updated) if isinstance(updated, (int, float)) and updated > 0 else 0,
                   dropped=dropped)

    def target_for(self, trigger: str | None) -> Target:
        """The route of ``trigger`` (None: push-to-talk, always-on), else the default."""
        if trigger:
            key = normalize_route_trigger(trigger)
            for route_trigger, target in self.routes:
                if route_trigger == key:
                    return target
        return self.default

    def session_key_for(self, trigger: str | None, current: str | None) -> str | None:
        """The ``sessionKey`` for ``voice.transcript`` (None: leave it out)."""
        target = self.target_for(trigger)
        if target.session_key:
            return target.session_key
        if target.agent_id:
            return f"agent:{target.agent_id}:main"
        return current

    def status(self) -> dict[str, Any]:
        return {"default": self.default.to_wire(), "routes": [{"trigger": t, "target": tg.to_wire()}
                                                               for t, tg in self.routes],
                "updatedAtMs": self.updated_at_ms, "dropped": self.dropped}
