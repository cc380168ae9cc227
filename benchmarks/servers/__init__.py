"""Local servers the benchmarks talk to over real HTTP (separate processes on 127.0.0.1)."""
