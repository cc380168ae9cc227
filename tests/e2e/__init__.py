"""End-to-end tests: real model servers and real async tools driven through a worker."""
