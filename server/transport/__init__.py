"""Socket.IO and Engine.IO as this server runs them: everything that leans on the internals of
aiohttp, python-engineio, python-socketio and websockets, installed by one call.

- `websocket.py`: Engine.IO websockets that leave aiohttp once the handshake is done;
- `tuning.py`: the ping wheel, the small packet queue, the orjson module;
- `packets.py`: Socket.IO packets a client may not send are dropped, not tracebacks;
- `fanout.py` (over `redis_channels.py`): emits across instances, a Redis channel per room;
- `hooks.py`: every private name the above use, checked at start; `versions.py`: the tested
  versions, checked at start. README.md says why each private name is needed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from socketio import AsyncManager

from server.config import Settings
from server.transport.fanout import LocalManager, RoomChannelRedisManager
from server.transport.hooks import TransportHookMissing, check_hooks
from server.transport.packets import ContractSocketServer
from server.transport.tuning import OrjsonModule, PingWheel, use_lean_websockets, use_small_queues
from server.transport.versions import UntestedVersion, check_versions

__all__ = [
    "Transport",
    "TransportHookMissing",
    "UntestedVersion",
    "create_transport",
    "install",
]

log = logging.getLogger(__name__)


@dataclass
class Transport:
    """The Socket.IO server with its patches in place, and what must be closed with it."""

    sio: ContractSocketServer
    pings: PingWheel

    async def aclose(self) -> None:
        """Disconnect every client (telling each why), end their connections at once, then
        stop the pings and the manager (its Redis connection)."""
        sio = self.sio
        log.info("shutting down: disconnecting clients", extra={"clients": len(sio.eio.sockets)})
        # `sio.shutdown()` only stops background tasks, and aiohttp would wait for every open
        # websocket until its ping timeout (45 s). A Socket.IO disconnect per namespace tells
        # each client why; python-engineio's close then only queues a CLOSE packet, so a `None`
        # is queued after it: its writer takes that as "closed" (as its own reader does at the
        # end of a connection), closes the websocket and ends a pending long-poll at once.
        for namespace in list(sio.manager.get_namespaces()):
            for sid, _ in list(sio.manager.get_participants(namespace, None)):
                await sio.disconnect(sid, namespace=namespace)
        for socket in list(sio.eio.sockets.values()):
            # not `eio.disconnect()`: it waits for each queue to drain, forever for a polling
            # client that is already gone
            await socket.close(wait=False)
            socket.queue.put_nowait(None)
        await sio.shutdown()
        await self.pings.aclose()
        await sio.manager.aclose()


def create_transport(settings: Settings) -> Transport:
    """The Socket.IO server for `settings` (fan-out through Redis when `redis_url` is set),
    patched. Refuses, naming them, library versions outside the tested range."""
    check_versions()
    sio = ContractSocketServer(
        async_mode="aiohttp",
        client_manager=_client_manager(settings),
        cors_allowed_origins=settings.cors_origins,
        transports=settings.transports,
        max_http_buffer_size=settings.max_payload_bytes,
        logger=False,
        engineio_logger=False,
        json=OrjsonModule,
    )
    return install(sio)


def install(sio: ContractSocketServer) -> Transport:
    """Our websockets, pings and queues into `sio`'s Engine.IO server, once every hook they
    need has been found (`TransportHookMissing` otherwise)."""
    check_hooks(sio)
    pings = use_lean_websockets(sio.eio)
    use_small_queues(sio.eio)
    return Transport(sio, pings)


def _client_manager(settings: Settings) -> AsyncManager:
    """Many instances share rooms and emits through Redis; else this process only."""
    if not settings.redis_url:
        return LocalManager()
    return RoomChannelRedisManager(settings.redis_url)
