"""Embedded defaults for `make run`: debug on, SQLite, in-memory layer and broker."""

import os

# Must be decided before base reads it: local runs default to debug (base keeps it off).
os.environ.setdefault("DJANGO_DEBUG", "true")

from .base import *
