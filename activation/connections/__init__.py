"""Event forwarding: connections (source → event destination), the live forwarding queue per
destination, dead letters and replays of stored events. See README.md's API section."""
