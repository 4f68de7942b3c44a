"""The command line's shared parts: help texts print as written."""

from __future__ import annotations

from typer.testing import CliRunner

from indunet.cli import app


def test_help_texts_keep_the_toml_sections_they_name():
    """`[uplink] url` and `[ingest] user` are section names, not markup to be swallowed."""
    runner = CliRunner()
    serve = runner.invoke(app, ["serve", "--help"], terminal_width=200)
    assert serve.exit_code == 0
    assert "[uplink] url" in serve.output and "[federation] url" in serve.output
    acl = runner.invoke(app, ["broker", "acl", "--help"], terminal_width=200)
    assert acl.exit_code == 0 and "[ingest] user" in acl.output
