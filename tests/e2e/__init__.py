"""End-to-end tests: real model servers and real async tools driven through a worker."""

import pytest

# the shared checks live in scenarios.py: let pytest explain their failed asserts too
pytest.register_assert_rewrite("tests.e2e.scenarios")
