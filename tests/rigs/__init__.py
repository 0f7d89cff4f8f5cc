"""Process control for the repo's own tests and benchmarks (not shipped in the hub package)."""
