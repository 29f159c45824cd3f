"""Helpers shared by the test folders: stacks, the hub process, PostgreSQL, Chromium."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
