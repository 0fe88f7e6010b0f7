"""The request path, one step per function, in the order a call goes through it."""
