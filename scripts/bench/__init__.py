"""The parts of `make bench` (scripts/bench.py): each measures the real service, in real
processes, against a fresh SQLite file or PostgreSQL database, and cleans up after itself."""
