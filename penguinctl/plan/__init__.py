"""Plans as data: changes, diffing, ordering, safety checks and checksums."""
