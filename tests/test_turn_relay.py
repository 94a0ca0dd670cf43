"""A call that can only connect through a TURN relay, for real.

The test builds its own network of three namespaces: the caller (Chromium), the relay
(Debian's coturn, and the router between the two others) and the server (`python -m server`).
The relay forwards TCP (the page, REST, Socket.IO) but nftables drops every forwarded UDP
packet, as a carrier NAT that lets no media through would: media can only flow through
coturn. With TURN (static or REST API credentials) the call connects over a relay candidate
and the greeting is heard; without it (the control) it never connects and FAILS.

Needs root, `ip` (iproute2), `nft` (nftables), `turnserver` (coturn) and Chromium: skipped
without them, failed under CI=true. Everything the test made is removed, whatever happens.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, async_playwright

from server.calls.prompts import CALL_GREETING
from tests.conftest import require
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.support.fakes.spoken import silence_wav
from tests.support.processes import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CALLER_IP, RELAY_CALLER_SIDE = "10.99.1.2", "10.99.1.1"
SERVER_IP, RELAY_SERVER_SIDE = "10.99.2.2", "10.99.2.1"
PORT = 3000  # the server namespace is the test's own: nothing else listens there
REALM = "mobok.test"
WAIT_MS = 60_000

# drop every forwarded UDP packet: caller and server can exchange TCP only
NO_FORWARDED_UDP = """
table inet mobok_turn_test {
  chain forward {
    type filter hook forward priority 0; policy accept;
    meta l4proto udp drop
  }
}
"""

SELECTED_PAIR = """async () => {
  const pc = window.aiCall && window.aiCall.pc;
  if (!pc) return null;
  const stats = await pc.getStats();
  let pair = null;
  for (const r of stats.values()) {
    if (r.type === 'transport' && r.selectedCandidatePairId) {
      pair = stats.get(r.selectedCandidatePairId);
    }
  }
  if (!pair) return null;
  const local = stats.get(pair.localCandidateId);
  const remote = stats.get(pair.remoteCandidateId);
  return { local: local.candidateType, localAddress: local.address,
           remote: remote.candidateType, remoteAddress: remote.address, state: pair.state };
}"""

INBOUND_LEVEL = """async () => {
  const pc = window.aiCall && window.aiCall.pc;
  if (!pc) return 0;
  for (const r of (await pc.getStats()).values()) {
    if (r.type === 'inbound-rtp' && r.kind === 'audio') return r.audioLevel || 0;
  }
  return 0;
}"""


def require_network_tools() -> None:
    require(os.geteuid() == 0, "network namespaces need root")
    for tool, package in (("ip", "iproute2"), ("nft", "nftables"), ("turnserver", "coturn")):
        require(shutil.which(tool) is not None, f"{tool} is missing (apt-get install {package})")
    require_chromium()


async def run(*command: str, check: bool = True) -> str:
    proc = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {out.decode(errors='replace')}")
    return out.decode(errors="replace")


async def run_input(text: str, *command: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate(text.encode())
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {err.decode(errors='replace')}")


@dataclass
class Network:
    caller: str
    relay: str
    server: str

    def exec(self, namespace: str, *command: str) -> list[str]:
        return ["ip", "netns", "exec", namespace, *command]


@asynccontextmanager
async def network() -> AsyncIterator[Network]:
    """caller <-> relay <-> server, UDP not forwarded; every namespace removed afterwards."""
    tag = uuid.uuid4().hex[:6]
    net = Network(f"mobok-{tag}-c", f"mobok-{tag}-r", f"mobok-{tag}-s")
    made: list[str] = []
    try:
        for ns in (net.caller, net.relay, net.server):
            await run("ip", "netns", "add", ns)
            made.append(ns)
        for end, ns, ip, relay_end, relay_ip in (
            ("eth-c", net.caller, CALLER_IP, "eth-rc", RELAY_CALLER_SIDE),
            ("eth-s", net.server, SERVER_IP, "eth-rs", RELAY_SERVER_SIDE),
        ):
            await run(
                "ip", "link", "add", "name", end, "netns", ns,
                "type", "veth", "peer", "name", relay_end, "netns", net.relay,
            )  # fmt: skip
            await run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", end)
            await run("ip", "-n", net.relay, "addr", "add", f"{relay_ip}/24", "dev", relay_end)
            await run("ip", "-n", ns, "link", "set", end, "up")
            await run("ip", "-n", net.relay, "link", "set", relay_end, "up")
            await run("ip", "-n", ns, "route", "add", "default", "via", relay_ip)
        for ns in made:
            await run("ip", "-n", ns, "link", "set", "lo", "up")
        await run(*net.exec(net.relay, "sysctl", "-qw", "net.ipv4.ip_forward=1"))
        await run_input(NO_FORWARDED_UDP, *net.exec(net.relay, "nft", "-f", "-"))
        yield net
    finally:
        for ns in made:  # takes the veths, routes and nftables rules along
            await run("ip", "netns", "del", ns, check=False)


@asynccontextmanager
async def process(command: list[str], log: Path, env: dict[str, str] | None = None) -> Any:
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *command, stdout=out, stderr=asyncio.subprocess.STDOUT, cwd=ROOT, env=env
        )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def coturn(net: Network, tmp: Path, credentials: list[str]) -> list[str]:
    return net.exec(
        net.relay,
        "turnserver", "-n", "--no-cli", "--no-tls", "--no-dtls", "--fingerprint",
        f"--listening-ip={RELAY_CALLER_SIDE}", f"--listening-ip={RELAY_SERVER_SIDE}",
        f"--relay-ip={RELAY_SERVER_SIDE}", "--listening-port=3478", f"--realm={REALM}",
        f"--db={tmp / 'turndb'}", f"--pidfile={tmp / 'turnserver.pid'}",
        "--log-file=stdout", "--simple-log", "--verbose",
        *credentials,
    )  # fmt: skip


async def wait_listening(net: Network, host: str, port: int, proc: Any, log: Path) -> None:
    probe = f"import socket; socket.create_connection(({host!r}, {port}), 1).close()"
    for _ in range(300):
        if proc.returncode is not None:
            raise RuntimeError(f"exited before listening:\n{tail(log)}")
        checked = await asyncio.create_subprocess_exec(
            *net.exec(net.caller, sys.executable, "-c", probe),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        if await checked.wait() == 0:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"nothing listening on {host}:{port}:\n{tail(log)}")


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


@asynccontextmanager
async def call_setup(
    tmp: Path, turn: list[str] | None, server_env: dict[str, str]
) -> AsyncIterator[tuple[Page, Path]]:
    """The network, coturn (unless `turn` is None), the server and a caller's page."""
    require_network_tools()
    async with AsyncExitStack() as stack:
        net = await stack.enter_async_context(network())
        if turn is not None:
            log = tmp / "coturn.log"
            relay = await stack.enter_async_context(process(coturn(net, tmp, turn), log))
            await wait_listening(net, RELAY_CALLER_SIDE, 3478, relay, log)
        database = tmp / "calls.sqlite3"
        env = {
            **os.environ,
            "HOST": SERVER_IP,
            "PORT": str(PORT),
            "DATABASE_URL": f"sqlite://{database}",
            "AI_PROVIDER": "local",
            "OPENAI_API_KEY": "",
            "GEMINI_API_KEY": "",
            "REDIS_URL": "",
            "AUTH_SECRET": "",
            "STUN_SERVER_URL": "",
            "STT_PRELOAD": "0",  # the greeting is all this test listens for
            "VOICE_GREETING_DELAY_MS": "300",
            "RTC_ICE_LOOPBACK": "0",
            **server_env,
        }
        log = tmp / "server.log"
        server = await stack.enter_async_context(
            process(net.exec(net.server, sys.executable, "-m", "server"), log, env)
        )
        await wait_listening(net, SERVER_IP, PORT, server, log)

        browser_in_caller = tmp / "chromium"
        browser_in_caller.write_text(
            f'#!/bin/sh\nexec ip netns exec {net.caller} {CHROMIUM} "$@"\n'
        )
        browser_in_caller.chmod(0o755)
        microphone = tmp / "microphone.wav"
        microphone.write_bytes(silence_wav(seconds=2, rate=48_000))
        pw = await stack.enter_async_context(async_playwright())
        browser = await pw.chromium.launch(
            executable_path=str(browser_in_caller),
            args=[
                *CHROMIUM_ARGS,
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={microphone}",
                "--autoplay-policy=no-user-gesture-required",
                # a microphone needs a secure context: the server is no localhost here
                f"--unsafely-treat-insecure-origin-as-secure=http://{SERVER_IP}:{PORT}",
            ],
        )
        stack.push_async_callback(browser.close)
        page = await (await browser.new_context()).new_page()
        console: list[str] = []
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda exc: console.append(f"pageerror: {exc}"))
        stack.callback(lambda: print("PAGE CONSOLE", *console[-30:], sep="\n"))
        await page.goto(f"http://{SERVER_IP}:{PORT}/ai-call-test.html")
        yield page, database


def stored_call(database: Path, call_id: str) -> tuple[str, str | None]:
    with sqlite3.connect(database) as db:
        row = db.execute("SELECT status, connected_at FROM calls WHERE id = ?", (call_id,))
        status, connected_at = row.fetchone()
    return status, connected_at


async def relayed_call_is_heard(page: Page, database: Path) -> None:
    await page.click("#startCall")
    await page.wait_for_function(
        "text => window.aiCall.events.some(e => e.text === text)",
        arg=CALL_GREETING,
        timeout=WAIT_MS,
    )
    await page.wait_for_function(f"async () => (await ({INBOUND_LEVEL})()) > 0", timeout=WAIT_MS)
    pair = await page.evaluate(SELECTED_PAIR)
    assert pair is not None and pair["state"] == "succeeded", pair
    # one end is coturn's relayed address: media went through the relay. Which end depends on
    # the pair ICE nominates first: the page's relay candidate, or the AI peer's (it uses the
    # relay too, and the page reaches coturn's own address without being forwarded)
    relayed = [pair[f"{end}Address"] for end in ("local", "remote") if pair[end] == "relay"]
    assert RELAY_SERVER_SIDE in relayed, pair
    call_id = await page.evaluate("window.aiCall.call.id")
    assert stored_call(database, call_id)[0] == "IN_PROGRESS"
    await page.click("#endCall")
    for _ in range(100):
        if stored_call(database, call_id)[0] == "ENDED":
            break
        await asyncio.sleep(0.1)
    assert stored_call(database, call_id)[0] == "ENDED"


async def test_a_call_connects_through_turn_with_static_credentials(tmp_path: Path) -> None:
    turn = ["--lt-cred-mech", "--user=mobok:relay-password"]
    server_env = {
        "TURN_SERVER_URL": f"turn:{RELAY_CALLER_SIDE}:3478",
        "TURN_USERNAME": "mobok",
        "TURN_CREDENTIAL": "relay-password",
    }
    async with call_setup(tmp_path, turn, server_env) as (page, database):
        await relayed_call_is_heard(page, database)


async def test_a_call_connects_through_turn_with_rest_credentials(tmp_path: Path) -> None:
    secret = "a-shared-secret-between-coturn-and-the-server"
    turn = ["--use-auth-secret", f"--static-auth-secret={secret}"]
    server_env = {
        "TURN_SERVER_URL": f"turn:{RELAY_CALLER_SIDE}:3478",
        "TURN_SECRET": secret,
        "TURN_TTL_SECONDS": "600",
        "RTC_ICE_TRANSPORT_POLICY": "relay",  # both ends: relayed candidates only
    }
    async with call_setup(tmp_path, turn, server_env) as (page, database):
        config = await page.evaluate(
            "async () => (await (await fetch('/api/v1/calls/config')).json()).data.config"
        )
        assert config["iceTransportPolicy"] == "relay"
        assert config["iceServers"][0]["username"].endswith(":caller")
        await relayed_call_is_heard(page, database)


async def test_without_turn_the_call_never_connects_and_fails(tmp_path: Path) -> None:
    """The control: the same network without a relay. No media can flow, so the call must
    not connect; the AI peer gives up and the call FAILS (no call dangles)."""
    async with call_setup(tmp_path, None, {}) as (page, database):
        await page.click("#startCall")
        call_id = await (
            await page.wait_for_function("() => window.aiCall.call && window.aiCall.call.id")
        ).json_value()
        for _ in range(900):  # the AI peer waits 30 s for media, then hangs up
            status, connected_at = stored_call(database, str(call_id))
            if status == "FAILED":
                break
            assert status in ("RINGING", "CONNECTING"), status
            await asyncio.sleep(0.1)
        assert (status, connected_at) == ("FAILED", None)
        assert await page.evaluate("window.aiCall.pc.connectionState") != "connected"
