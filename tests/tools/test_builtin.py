"""The node's own tools, served in process: device status, and GPIO only by configured name.

GPIO hardware cannot run here: the libgpiod binding is replaced by a small fake of its v2 API
(``request_lines``, ``LineSettings``, ``line.Direction/Value/Bias``), the one double in this file.
"""

from __future__ import annotations

import types
from pathlib import Path

import pytest
import trio

from node_agent.adapters.base import GpioError
from node_agent.adapters.gpio import GpiodLines
from node_agent.config.mcp import McpSettings
from node_agent.errors import InvokeError
from node_agent.tools.builtin import build_device_server, device_status, temperatures
from node_agent.tools.connectors import InProcessConnector
from node_agent.tools.hub import ToolHub
from node_agent.tools.supervisor import ServerSupervisor


class FakeGpiod:
    """libgpiod v2's surface as GpiodLines uses it, recording what the kernel would be asked."""

    def __init__(self):
        enum = lambda *names: types.SimpleNamespace(**{n: n for n in names})  # noqa: E731
        self.line = types.SimpleNamespace(Direction=enum("INPUT", "OUTPUT", "AS_IS"),
                                          Value=enum("ACTIVE", "INACTIVE"),
                                          Bias=enum("AS_IS", "DISABLED", "PULL_UP", "PULL_DOWN"))
        self.levels: dict[tuple[str, int], str] = {}
        self.calls: list[tuple] = []

    def LineSettings(self, **kwargs):  # noqa: N802  (the binding's name)
        return kwargs

    def request_lines(self, chip, *, consumer, config):
        ((offset, settings),) = config.items()
        self.calls.append(("request", chip, offset, settings["direction"], settings.get("output_value")))
        if "output_value" in settings:
            self.levels[(chip, offset)] = settings["output_value"]
        fake = self

        class Request:
            def get_value(self, line):
                return fake.levels.get((chip, line), "INACTIVE")

            def set_value(self, line, value):
                fake.calls.append(("set", chip, line, value))
                fake.levels[(chip, line)] = value

            def reconfigure_lines(self, *, config):
                ((line, new),) = config.items()
                fake.calls.append(("reconfigure", chip, line, new["direction"], new.get("output_value")))
                fake.levels[(chip, line)] = new["output_value"]

            def release(self):
                fake.calls.append(("release", chip, offset))

        return Request()


GPIO_CONFIG = McpSettings.from_table({"builtin": {"gpio": {
    "relay": {"chip": "/dev/gpiochip0", "line": 17, "direction": "out"},
    "door": {"chip": "/dev/gpiochip0", "line": 27, "bias": "pull-up"}}}}).builtin.gpio


async def start(gpio=None, thermal_root: Path | None = None):
    connector = InProcessConnector("device", lambda: build_device_server(
        agent_started_at=0.0, gpio=gpio, **({"thermal_root": thermal_root} if thermal_root else {})))
    hub = ToolHub([ServerSupervisor("device", connector, timeout=10, builtin=True)])
    return hub


async def running(hub, nursery):
    nursery.start_soon(hub.run)
    with trio.fail_after(20):
        while not hub.catalog.descriptors:
            await hub.wait_changed(hub.version)


def test_temperatures_come_from_every_readable_thermal_zone(tmp_path):
    for index, (kind, value) in enumerate([("cpu-thermal", "48312"), ("gpu", "bad"), ("soc", "51000")]):
        zone = tmp_path / f"thermal_zone{index}"
        zone.mkdir()
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(value + "\n")
    assert temperatures(tmp_path) == [{"zone": "thermal_zone0", "type": "cpu-thermal", "celsius": 48.3},
                                      {"zone": "thermal_zone2", "type": "soc", "celsius": 51.0}]
    status = device_status(agent_started_at=0.0, thermal_root=tmp_path)
    assert {"uptimeSeconds", "cpuCount", "memory", "disk", "temperatures"} <= set(status)


async def test_device_status_is_published_and_served_in_process(tmp_path):
    zone = tmp_path / "thermal_zone0"
    zone.mkdir()
    (zone / "temp").write_text("42000")
    (zone / "type").write_text("cpu")
    hub = await start(thermal_root=tmp_path)
    async with trio.open_nursery() as nursery:
        await running(hub, nursery)
        assert [d.name for d in hub.catalog.descriptors] == ["device_status"]
        with trio.fail_after(20):
            result = await hub.call("device", "status", {})
        nursery.cancel_scope.cancel()
    assert result["structuredContent"]["temperatures"] == [{"zone": "thermal_zone0", "type": "cpu", "celsius": 42.0}]
    assert result["structuredContent"]["memory"]["totalBytes"] > 0


async def test_gpio_tools_name_only_configured_lines_and_write_only_outputs():
    fake = FakeGpiod()
    hub = await start(gpio=GpiodLines(GPIO_CONFIG, gpiod_module=fake))
    async with trio.open_nursery() as nursery:
        await running(hub, nursery)
        by_name = {d.name: d for d in hub.catalog.descriptors}
        assert sorted(by_name) == ["device_gpio_read", "device_gpio_write", "device_status"]
        assert by_name["device_gpio_read"].parameters["properties"]["line"]["enum"] == ["door", "relay"]
        # One allowed value: pydantic writes it as a JSON Schema const.
        assert by_name["device_gpio_write"].parameters["properties"]["line"]["const"] == "relay"
        with trio.fail_after(20):
            read = await hub.call("device", "gpio_read", {"line": "relay"})
            wrote = await hub.call("device", "gpio_write", {"line": "relay", "value": True})
            again = await hub.call("device", "gpio_write", {"line": "relay", "value": False})
            door = await hub.call("device", "gpio_read", {"line": "door"})
            not_an_output = await hub.call("device", "gpio_write", {"line": "door", "value": True})
            a_pin_number = await hub.call("device", "gpio_write", {"line": "4", "value": True})
        nursery.cancel_scope.cancel()
    assert read["structuredContent"] == {"line": "relay", "value": False}
    assert wrote["structuredContent"] == {"line": "relay", "value": True}
    assert again["structuredContent"] == {"line": "relay", "value": False}
    assert door["structuredContent"] == {"line": "door", "value": False}
    assert not_an_output["isError"] and a_pin_number["isError"]
    # Reading the untouched relay requested it AS_IS (a read never drives a pin); the first write
    # reconfigured it as an output with the value; the door is an input with its pull-up.
    assert fake.calls == [("request", "/dev/gpiochip0", 17, "AS_IS", None),
                          ("reconfigure", "/dev/gpiochip0", 17, "OUTPUT", "ACTIVE"),
                          ("set", "/dev/gpiochip0", 17, "INACTIVE"),
                          ("request", "/dev/gpiochip0", 27, "INPUT", None)]


async def test_gpio_lines_refuse_names_they_were_not_given():
    lines = GpiodLines(GPIO_CONFIG, gpiod_module=FakeGpiod())
    with pytest.raises(GpioError, match="no GPIO line named 'gpio4' is configured"):
        await lines.read("gpio4")
    with pytest.raises(GpioError, match="is an input"):
        await lines.write("door", True)


async def test_without_gpio_lines_there_are_no_gpio_tools():
    hub = await start(gpio=GpiodLines((), gpiod_module=FakeGpiod()))
    async with trio.open_nursery() as nursery:
        await running(hub, nursery)
        assert [d.name for d in hub.catalog.descriptors] == ["device_status"]
        with pytest.raises(InvokeError) as caught:
            await hub.call("device", "gpio_write", {"line": "relay", "value": True})
        nursery.cancel_scope.cancel()
    assert caught.value.code == "MCP_TOOL_UNAVAILABLE"


def test_gpio_lines_on_an_adapter_without_gpio_stop_the_start():
    from node_agent.adapters import select_adapter
    from node_agent.agent.status import StatusBoard
    from node_agent.errors import ConfigError
    from node_agent.tools.extension import ToolsExtension

    settings = McpSettings.from_table({"builtin": {"gpio": {"relay": {"chip": "/dev/gpiochip0", "line": 17}}}})
    with pytest.raises(ConfigError, match="the 'linux' adapter has no GPIO"):
        ToolsExtension(settings, select_adapter("linux"), StatusBoard(None), agent_started_at=0.0)
    assert select_adapter("pi").gpio_factory is GpiodLines
