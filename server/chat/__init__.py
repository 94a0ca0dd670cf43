"""The conversation core shared by every protocol: sessions, history, one AI turn, tools."""
