"""The lab's tests use the template's docker fixtures (tests/dockerfixtures.py)."""

from dockerfixtures import *  # noqa: F403
