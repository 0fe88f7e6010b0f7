"""Authentication: who is calling (a `Principal`) from the request's key."""
