"""Every name of aiohttp, python-engineio, python-socketio and websockets this package leans on
beyond their documented API, in one table (README.md says why each is needed).

`check_hooks` runs when the transport is installed: a name that is gone, or a method whose
parameters changed, stops the server at start with the list of what is missing, instead of a
patch quietly not being applied. Attributes that only exist on a live socket (`socket.queue`,
`socket.last_ping`, ...) are read directly by the code (an `AttributeError`, never a default)
and checked after a real connection by tests/test_transport_contract.py.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["method", "slot", "class attribute", "instance attribute", "environ key"]


@dataclass(frozen=True)
class Hook:
    library: str  # the distribution that defines it
    owner: str  # "module:Class" (or "module:function" for an environ key)
    name: str
    kind: Kind
    params: tuple[str, ...] = ()  # a method's parameters, as `inspect.signature` lists them
    used_by: str = ""  # our module that uses it

    @property
    def label(self) -> str:
        return f"{self.library}: {self.owner.split(':')[-1]}.{self.name}"


_REQUEST_HANDLER = "aiohttp.web_protocol:RequestHandler"
_ESOCKET = "engineio.async_socket:AsyncSocket"
_ESERVER = "engineio.async_server:AsyncServer"
_SSERVER = "socketio.async_server:AsyncServer"
_PUBSUB = "socketio.async_pubsub_manager:AsyncPubSubManager"
_MANAGER = "socketio.async_manager:AsyncManager"
_PACKET = "socketio.packet:Packet"
_WS_PROTOCOL = "websockets.protocol:Protocol"

HOOKS: tuple[Hook, ...] = (
    # aiohttp: the websocket's connection leaves aiohttp after the handshake (websocket.py)
    Hook("aiohttp", _REQUEST_HANDLER, "_message_tail", "slot", used_by="websocket"),
    Hook("aiohttp", _REQUEST_HANDLER, "transport", "slot", used_by="websocket"),
    Hook("aiohttp", _REQUEST_HANDLER, "connection_lost", "method", ("self", "exc"), "websocket"),
    # python-engineio: the websocket class, the socket's queue, the pings
    Hook("python-engineio", _ESERVER, "_async", "instance attribute", used_by="tuning"),
    Hook(
        "python-engineio",
        _ESERVER,
        "start_background_task",
        "method",
        ("self", "target", "args", "kwargs"),
        "tuning",
    ),
    Hook(
        "python-engineio", _ESERVER, "create_queue", "method", ("self", "args", "kwargs"), "tuning"
    ),
    Hook("python-engineio", _ESERVER, "reason", "class attribute", used_by="websocket"),
    Hook("python-engineio", _ESERVER, "sockets", "instance attribute", used_by="websocket"),
    Hook("python-engineio", _ESOCKET, "_send_ping", "method", ("self",), "tuning"),
    Hook("python-engineio", _ESOCKET, "_websocket_handler", "method", ("self", "ws"), "websocket"),
    Hook(
        "python-engineio",
        _ESOCKET,
        "_upgrade_websocket",
        "method",
        ("self", "environ"),
        "websocket",
    ),
    Hook("python-engineio", _ESOCKET, "receive", "method", ("self", "pkt"), "websocket"),
    Hook(
        "python-engineio",
        _ESOCKET,
        "close",
        "method",
        ("self", "wait", "abort", "reason"),
        "websocket",
    ),
    Hook("python-engineio", _ESOCKET, "check_ping_timeout", "method", ("self",), "tuning"),
    *(
        Hook("python-engineio", _ESOCKET, name, "instance attribute", used_by="websocket, tuning")
        for name in (
            "queue",
            "last_ping",
            "connected",
            "upgrading",
            "upgraded",
            "closing",
            "closed",
            "server",
            "sid",
        )
    ),
    Hook(
        "python-engineio",
        "engineio.async_drivers.aiohttp:translate_request",
        "aiohttp.request",
        "environ key",
        used_by="websocket, server.auth",
    ),
    Hook(
        "python-engineio",
        "engineio.async_drivers.aiohttp:translate_request",
        "wsgi.input",
        "environ key",
        used_by="websocket",
    ),
    # python-socketio: malformed packets dropped (packets.py), the fan-out (fanout.py)
    Hook(
        "python-socketio",
        _SSERVER,
        "_handle_eio_message",
        "method",
        ("self", "eio_sid", "data"),
        "packets",
    ),
    Hook("python-socketio", _SSERVER, "_binary_packet", "instance attribute", used_by="packets"),
    Hook(
        "python-socketio",
        _SSERVER,
        "_handle_eio_disconnect",
        "method",
        ("self", "eio_sid", "reason"),
        "packets",
    ),
    Hook("python-socketio", _SSERVER, "_engineio_server_class", "method", ("self",), "packets"),
    Hook(
        "python-socketio",
        _SSERVER,
        "_send_eio_packet",
        "method",
        ("self", "eio_sid", "eio_pkt"),
        "fanout",
    ),
    Hook("python-socketio", _SSERVER, "packet_class", "instance attribute", used_by="fanout"),
    Hook("python-socketio", _PUBSUB, "_publish", "method", ("self", "data"), "fanout"),
    Hook("python-socketio", _PUBSUB, "_listen", "method", ("self",), "fanout"),
    Hook("python-socketio", _PUBSUB, "_handle_emit", "method", ("self", "message"), "fanout"),
    Hook(
        "python-socketio",
        _PUBSUB,
        "_return_callback",
        "method",
        ("self", "host_id", "sid", "namespace", "callback_id", "args"),
        "fanout",
    ),
    Hook("python-socketio", _PUBSUB, "_handle_enter_room", "method", ("self", "message"), "fanout"),
    Hook("python-socketio", _PUBSUB, "_handle_leave_room", "method", ("self", "message"), "fanout"),
    Hook("python-socketio", _PUBSUB, "thread", "instance attribute", used_by="fanout"),
    Hook("python-socketio", _PUBSUB, "channel", "instance attribute", used_by="fanout"),
    Hook("python-socketio", _PUBSUB, "json", "instance attribute", used_by="fanout"),
    Hook(
        "python-socketio",
        _MANAGER,
        "emit",
        "method",
        ("self", "event", "data", "namespace", "room", "skip_sid", "callback", "to", "kwargs"),
        "fanout",
    ),
    Hook("python-socketio", _MANAGER, "rooms", "instance attribute", used_by="fanout"),
    Hook("python-socketio", _PACKET, "decode", "method", ("self", "encoded_packet"), "packets"),
    Hook("python-socketio", _PACKET, "add_attachment", "method", ("self", "attachment"), "packets"),
    Hook(
        "python-socketio",
        _PACKET,
        "reconstruct_binary",
        "method",
        ("data", "attachments"),
        "fanout",
    ),
    # websockets: public sans-I/O API only; listed because the package is built on it
    Hook("websockets", _WS_PROTOCOL, "close_expected", "method", ("self",), "websocket"),
    Hook("websockets", _WS_PROTOCOL, "fail", "method", ("self", "code", "reason"), "websocket"),
    Hook(
        "websockets",
        _WS_PROTOCOL,
        "__init__",
        "method",
        ("self", "side", "state", "max_size", "logger"),
        "websocket",
    ),
)


class TransportHookMissing(RuntimeError):
    """A library no longer has what server/transport patches: the server does not start."""


def owner_of(hook: Hook) -> Any:
    module, _, name = hook.owner.partition(":")
    return getattr(importlib.import_module(module), name)


def _slots(cls: type) -> set[str]:
    return {slot for klass in cls.__mro__ for slot in getattr(klass, "__slots__", ())}


def problem(hook: Hook) -> str | None:
    """What is wrong with a hook that can be checked without a live object, else None."""
    try:
        owner = owner_of(hook)
    except (ImportError, AttributeError):
        return f"{hook.label}: {hook.owner} is gone"
    if hook.kind == "method":
        function = getattr(owner, hook.name, None)
        if function is None:
            return f"{hook.label} is gone"
        params = tuple(inspect.signature(function).parameters)
        if params != hook.params:
            return f"{hook.label} takes {params}, not {hook.params}"
    elif hook.kind == "slot" and hook.name not in _slots(owner):
        return f"{hook.label} is gone"
    elif hook.kind == "class attribute" and not hasattr(owner, hook.name):
        return f"{hook.label} is gone"
    return None


def missing_on(obj: Any, owner: str) -> list[str]:
    """The instance attributes of `owner`'s hooks that `obj` lacks."""
    return [
        f"{hook.label} is gone"
        for hook in HOOKS
        if hook.owner == owner and hook.kind == "instance attribute" and not hasattr(obj, hook.name)
    ]


def check_hooks(sio: Any) -> None:
    """Every hook checkable before a client connects: on the classes, and on the Socket.IO
    server, its Engine.IO server and its manager. Raises `TransportHookMissing`."""
    from socketio.async_pubsub_manager import AsyncPubSubManager

    problems = [p for p in map(problem, HOOKS) if p is not None]
    problems += missing_on(sio, _SSERVER) + missing_on(sio.eio, _ESERVER)
    if hasattr(sio.eio, "_async") and "websocket" not in sio.eio._async:
        problems.append("python-engineio: AsyncServer._async has no 'websocket' driver")
    problems += missing_on(sio.manager, _MANAGER)
    if isinstance(sio.manager, AsyncPubSubManager):
        problems += missing_on(sio.manager, _PUBSUB)
    if problems:
        raise TransportHookMissing(
            "server/transport cannot patch the installed libraries (see "
            "server/transport/README.md): " + "; ".join(problems)
        )
