"""newsdesk's knowledge side: articles in, cited answers out. Never imports ``bot``."""
