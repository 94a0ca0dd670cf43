"""Agent chat (CONTRACT §3): agents per project, history per (project, agent, client),
delegated tasks reported back automatically, and who is connected (assembled by
`server.wiring`)."""
