"""Money: the built-in price table, usage -> USD, and the token estimates reservations need."""
