"""Protocol adapters: thin, validate, call the core, emit the result."""
