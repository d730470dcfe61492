"""The I/O side: Redis keys and scripts, the database, and applying an interpreter Outcome."""
