"""What a running worker exposes about itself: Prometheus metrics (`metrics`, statek[metrics]),
/healthz and /readyz (`health`), OpenTelemetry traces (`tracing`, statek[otel]) and
structured logs with job context (`logs`). `hooks` holds the observation points the worker
calls, each behind one `hooks.ON` check."""
