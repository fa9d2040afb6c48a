"""Privacy: deletion requests, erasure across every table, export, retention and audit (SPEC §9)."""
