"""serve's --uplink, --uplink-enterprise and --federation-url: checked, merged over [uplink]."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from indunet.cli import app
from indunet.cli.run import _federation_options
from indunet.errors import ConfigError


def test_options_override_the_file_and_are_checked(settings_factory) -> None:
    settings = settings_factory(uplink={"url": "mqtt://a:1883", "interval_s": 5})
    _federation_options(settings, "mqtts://u:p@region:8883", "acme", "mqtt://127.0.0.1:1")
    assert settings.uplink.url == "mqtts://u:p@region:8883" and settings.uplink.interval_s == 5
    assert settings.uplink.enterprise == "acme"
    assert settings.federation.url == "mqtt://127.0.0.1:1"
    with pytest.raises(ConfigError, match="mqtt://"):
        _federation_options(settings, "http://region", None, None)
    with pytest.raises(ConfigError, match="forbidden"):
        _federation_options(settings, None, "a/b", None)
    bare = settings_factory()
    with pytest.raises(ConfigError, match="needs --uplink"):
        _federation_options(bare, None, "acme", None)


def test_serve_help_names_the_options() -> None:
    out = CliRunner().invoke(app, ["serve", "--help"], terminal_width=200).output
    for option in ("--uplink", "--uplink-enterprise", "--federation-url"):
        assert option in out
