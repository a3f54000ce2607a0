"""Side-by-side benchmarks of tensornet against its peers (see README.md)."""
