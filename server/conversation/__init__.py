"""What every protocol's conversation shares: per-client ordering lanes, AI rate limits,
delta coalescing, one AI turn (streamed deltas and tool calls) and the tools an assistant
may call."""
