"""Multi-participant rooms (CONTRACT §4): the room log, who is in a room, the model's turns."""

from server.rooms.backends import open_room_log
from server.rooms.frames import IncomingFrame, error_frame, parse_frame
from server.rooms.log import LogEntry, LogUnavailable, RoomLog
from server.rooms.registry import RoomClient
from server.rooms.service import RoomService

__all__ = [
    "IncomingFrame",
    "LogEntry",
    "LogUnavailable",
    "RoomClient",
    "RoomLog",
    "RoomService",
    "error_frame",
    "open_room_log",
    "parse_frame",
]
