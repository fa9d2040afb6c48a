"""Destination syncs: the destinations API, encrypted credentials, and the sync engine job."""
