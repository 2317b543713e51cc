"""What the doctor's checks share: the options, what earlier checks found, and what several
checks read, computed once on first use.

* ``config`` and ``store`` are set by the ``config`` and ``secret store`` checks; a check that
  needs them declares it (:class:`Needs`) and the runner skips it when they are missing.
* :meth:`Context.status` is the agent's last status (``status.json``, read through the typed
  :class:`~node_agent.agent.status.AgentStatus`).
* :meth:`Context.probe` is the gateway as the daemon's own transport meets it
  (:func:`node_agent.transport.probe`): the ``gateway`` and ``tls`` lines read the same probe.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Callable, Sequence

import attrs
import trio

from ..agent.status import AgentStatus, read_status
from ..config import Config
from ..config.voice import VoiceSettings
from ..secrets import SecretStore
from ..transport import Probe, probe


@attrs.frozen(kw_only=True)
class DoctorOptions:
    #: TCP + TLS + WebSocket upgrade, together.
    gateway_timeout: float = 5.0
    #: How long to wait for the gateway to speak first. OpenClaw sends ``connect.challenge``
    #: within milliseconds of the upgrade; the documented dialect waits for us.
    challenge_window: float = 2.0
    #: Open audio devices for a moment: each microphone (to find busy ones) and the speech output.
    probe_audio: bool = True
    audio_timeout: float = 10.0
    #: Installed service definitions to verify. ``None``: where ``service install`` puts them.
    unit_files: Sequence[Path] | None = None


class Needs(enum.Enum):
    """What a check needs from the checks before it (the value completes "needs ...")."""

    NOTHING = "nothing"
    CONFIG = "a configuration that loads"
    STORE = "a working secret store"


@attrs.define
class Context:
    load_config: Callable[[], Config]
    options: DoctorOptions = attrs.field(factory=DoctorOptions)
    config: Config | None = None
    store: SecretStore | None = None
    _status: AgentStatus | None = None
    _status_read: bool = False
    _probe: Probe | None = None

    @property
    def cfg(self) -> Config:
        """The configuration, for a check that declared :attr:`Needs.CONFIG`."""
        assert self.config is not None, "a check that needs the configuration ran without one"
        return self.config

    @property
    def voice(self) -> VoiceSettings:
        """The ``[voice]`` settings (the defaults when the configuration did not load)."""
        return self.config.voice if self.config is not None else VoiceSettings()

    def unmet(self, needs: Needs) -> Needs | None:
        if needs is Needs.NOTHING:
            return None
        if self.config is None:
            return Needs.CONFIG
        if needs is Needs.STORE and self.store is None:
            return Needs.STORE
        return None

    async def status(self) -> AgentStatus | None:
        """The agent's last status for this state dir (None: there is none, or no config)."""
        if not self._status_read:
            self._status_read = True
            if self.config is not None:
                self._status = await trio.to_thread.run_sync(read_status, self.config.state_dir)
        return self._status

    async def probe(self) -> Probe:
        """The gateway as the daemon's transport meets it: probed once, read by every check."""
        if self._probe is None:
            config = self.cfg
            self._probe = await probe(config.gateway_url, connect_timeout=self.options.gateway_timeout,
                                      window=self.options.challenge_window, ca_file=config.tls_ca_file,
                                      fingerprint=config.tls_fingerprint)
        return self._probe
