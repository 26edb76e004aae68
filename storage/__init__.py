"""SQLite storage through aiosqlite: the database, tasks and events, the outbox, routes."""
