"""manifest.yml: the Slack app in one paste, with only the scopes the bot uses."""

from __future__ import annotations

from pathlib import Path

MANIFEST = Path(__file__).resolve().parents[1] / "manifest.yml"


def test_manifest_declares_the_command_interactivity_and_minimal_scopes():
    text = MANIFEST.read_text()
    lines = [line.split("#")[0].rstrip() for line in text.splitlines()]
    assert "    - command: /kie" in lines
    # The slash command, interactivity and events: the three lines Socket Mode does without.
    assert text.count("https://bot.example.com/slack/events") == 3
    bot = lines.index("    bot:")
    scopes = [line.strip()[2:] for line in lines[bot + 1 : lines.index("settings:")]]
    assert scopes == [
        "chat:write",
        "chat:write.public",
        "commands",
        "files:write",
        "channels:join",
        "im:write",
        "files:read",
    ]
    assert "    is_enabled: true" in lines


def test_manifest_declares_the_home_tab_the_shortcut_its_event_and_socket_mode_off():
    lines = [line.split("#")[0].rstrip() for line in MANIFEST.read_text().splitlines()]
    assert "    home_tab_enabled: true" in lines
    shortcut = lines.index("    - name: Make a video from this")
    assert lines[shortcut + 1 : shortcut + 3] == [
        "      type: message",
        "      callback_id: kie_from_message",
    ]
    events = lines.index("    bot_events:")
    assert lines[events + 1] == "      - app_home_opened"
    assert "  socket_mode_enabled: false" in lines
