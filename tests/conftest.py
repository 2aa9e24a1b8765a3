"""Fixtures of the contract tests (tests/dockerfixtures.py). Your app's own tests live in tests/app/, with
their own conftest.py if they need one."""

from dockerfixtures import *  # noqa: F403
