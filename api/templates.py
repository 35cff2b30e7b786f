"""Placeholder until the templates API is built."""
from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
