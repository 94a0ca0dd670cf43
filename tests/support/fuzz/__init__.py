"""Property-based fuzzing of every protocol the server speaks (issue #5, part 5)."""
