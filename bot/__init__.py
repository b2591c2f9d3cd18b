"""newsdesk's front ends: CLI, REPL and Telegram, all on top of ``index``."""
