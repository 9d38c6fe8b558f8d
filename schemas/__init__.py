"""Avro and Cap'n Proto schemas shipped with blueflow."""
from pathlib import Path

SCHEMA_DIR = Path(__file__).resolve().parent

