"""The fast tier: rules, reporters, settings, the cache key and the fixers on plain data, without torch."""
