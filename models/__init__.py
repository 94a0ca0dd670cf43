"""Tortoise models. Table and column names are the contract's (CONTRACT §1.2, §2.1, §3-§5).

Every module in this package except `fields` holds models; they are found by name, so a new
module of models needs no registration.
"""

import pkgutil

from models.chat import ChatMessage, ChatSession, MessageType, Sender

__all__ = ["MODEL_MODULES", "ChatMessage", "ChatSession", "MessageType", "Sender"]

MODEL_MODULES = sorted(
    f"models.{m.name}" for m in pkgutil.iter_modules(__path__) if m.name != "fields"
)
