"""The conversation server: app factory, config, conversation core, AI, REST."""
