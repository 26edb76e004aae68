"""Socket Mode: with SLACK_APP_TOKEN and no signing secret, Slack's commands and clicks arrive
over the WebSocket the bot opens to the fake Slack, are acknowledged there, and keep arriving
after the socket drops."""

from __future__ import annotations

import asyncio

from tests.conftest import button_payload, eventually, slash_fields
from tests.e2e.test_actions import answer, veo_card
from tests.e2e.test_process import cli

APP_TOKEN = "xapp-1-A0APP-1-test-app-token"
#: Short pings, so a socket cut without a close frame is noticed within about a second.
SOCKET = {
    "slack_app_token": APP_TOKEN,
    "slack_signing_secret": None,
    "socket_ping_interval": 0.5,
}


async def connected(fake_slack, opened: int = 1) -> None:
    """Wait until the bot holds its `opened`-th Socket Mode connection."""
    await eventually(lambda: fake_slack.sockets_opened >= opened and fake_slack.socket)


async def command(fake_slack, text: str) -> dict:
    """`/kie <text>` as a `slash_commands` envelope; the bot's ack of it."""
    sent = await fake_slack.envelope("slash_commands", slash_fields(fake_slack, text))
    return await eventually(lambda: fake_slack.ack(sent))


async def test_a_slash_command_is_acked_over_the_socket_with_its_answer(fake_slack, start_bot):
    bot = await start_bot(fake_slack, **SOCKET)
    await connected(fake_slack)  # apps.connections.open took the app-level token, as Slack's does
    ack = await command(fake_slack, "help")
    assert ack["payload"]["response_type"] == "ephemeral"
    assert "`/kie help`" in ack["payload"]["text"]
    # No signing secret: the HTTP route is not needed, and says why it does not answer.
    async with bot.http.post(f"{bot.url}/slack/events", data="x") as response:
        assert response.status == 503
        assert "SLACK_SIGNING_SECRET" in (await response.json())["error"]


async def test_a_click_is_acked_over_the_socket_and_answered_by_response_url(
    fake_slack, fake_kie, start_bot
):
    _, root = await veo_card(start_bot, fake_slack, fake_kie, **SOCKET)
    await connected(fake_slack)
    sent = await fake_slack.envelope("interactive", button_payload(fake_slack, root, "Fresh link"))
    assert await eventually(lambda: fake_slack.ack(sent)) == {"envelope_id": sent}
    found = await answer(fake_slack)
    assert "valid 20 minutes" in found["text"]


async def test_a_dropped_socket_comes_back(fake_slack, start_bot):
    bot = await start_bot(fake_slack, **SOCKET)
    await connected(fake_slack)
    await fake_slack.drop_socket()  # cut without a close frame, as a network failure does
    await connected(fake_slack, opened=2)
    assert fake_slack.count("apps.connections.open") == 2  # a fresh URL for the new socket
    assert "`/kie help`" in (await command(fake_slack, "help"))["payload"]["text"]
    await fake_slack.refresh_socket()  # Slack asks for a new connection every few hours
    await connected(fake_slack, opened=3)
    assert "`/kie help`" in (await command(fake_slack, "help"))["payload"]["text"]
    await bot.server.stop()  # a clean shutdown closes the socket
    await eventually(lambda: fake_slack.socket is None)


async def test_the_bot_serves_while_slack_refuses_the_socket_and_connects_later(
    fake_slack, start_bot
):
    fake_slack.outage_status = 503
    # A guard, not a measure: a bot that waited for Slack before serving would never start.
    bot = await asyncio.wait_for(start_bot(fake_slack, **SOCKET), timeout=10)
    async with bot.http.get(f"{bot.url}/healthz") as response:
        assert response.status == 200  # kie.ai's callbacks do not wait for Slack
    await eventually(lambda: fake_slack.count("apps.connections.open") >= 2)  # it keeps trying
    fake_slack.outage_status = None
    await connected(fake_slack)
    assert "`/kie help`" in (await command(fake_slack, "help"))["payload"]["text"]


def test_a_malformed_app_token_is_one_line_that_keeps_it_secret(tmp_path):
    secret = "xoxb-1234-secret-bot-token"
    result = cli("serve", env={"SLACK_APP_TOKEN": secret}, cwd=tmp_path)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "SLACK_APP_TOKEN" in line and "xapp-" in line and "SLACK_BOT_TOKEN" in line
    assert secret not in result.stdout + result.stderr


def test_check_says_which_mode_is_in_force_and_that_results_are_polled(tmp_path):
    env = {"DATABASE_URL": "sqlite:///c.db", "KIE_API_KEY": "kie-key"}
    socket = cli("check", env=env | {"SLACK_APP_TOKEN": APP_TOKEN}, cwd=tmp_path)
    assert socket.returncode == 0, socket.stdout
    assert "Socket Mode" in socket.stdout and APP_TOKEN not in socket.stdout
    assert "results arrive by polling every 30 s" in socket.stdout  # PUBLIC_URL unset
    private = env | {"SLACK_SIGNING_SECRET": "s", "PUBLIC_URL": "http://10.0.0.5:3000"}
    http = cli("check", env=private, cwd=tmp_path)
    assert "HTTP mode" in http.stdout and "http://10.0.0.5:3000/slack/events" in http.stdout
    assert "results arrive by polling" in http.stdout
    assert "Slack cannot reach" in http.stdout and "set SLACK_APP_TOKEN" in http.stdout
    public = cli("check", env=env | {"PUBLIC_URL": "https://bot.example.com"}, cwd=tmp_path)
    assert "polling every" not in public.stdout
