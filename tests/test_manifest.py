"""manifest.yml: the Slack app in one paste, with only the scopes the bot uses."""

from __future__ import annotations

from pathlib import Path

MANIFEST = Path(__file__).resolve().parents[1] / "manifest.yml"


def test_manifest_declares_the_command_interactivity_and_minimal_scopes():
    text = MANIFEST.read_text()
    lines = [line.split("#")[0].rstrip() for line in text.splitlines()]
    assert "    - command: /kie" in lines
    assert text.count("https://bot.example.com/slack/events") == 2
    scopes = [line.strip()[2:] for line in lines if line.startswith("      - ")]
    assert scopes == ["chat:write", "chat:write.public", "commands", "files:write", "channels:join"]
    assert "    is_enabled: true" in lines
