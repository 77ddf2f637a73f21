"""goldenpath: layered validation of a real-time AI chat platform's golden path."""
