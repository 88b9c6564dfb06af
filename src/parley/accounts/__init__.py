"""Users, sign-in, sessions (refresh tokens) and profiles."""
