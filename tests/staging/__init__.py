"""Task 3.2: a deployed staging, validated over the wire (read-only but for its test users)."""
