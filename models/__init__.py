"""Tortoise models. Table and column names are the contract's (CONTRACT §1.2)."""

from models.chat import ChatMessage, ChatSession, MessageType, Sender

__all__ = ["ChatMessage", "ChatSession", "MessageType", "Sender"]

MODEL_MODULES = ["models.chat"]
