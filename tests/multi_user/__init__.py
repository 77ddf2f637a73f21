"""Task 3.3: concurrent users without interference, data isolation, memory under load."""
