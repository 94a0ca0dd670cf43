"""AI providers behind one small interface (`server.ai.base.LLM`)."""
