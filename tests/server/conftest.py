"""Server tests use the root conftest's ``live`` server, ``http`` client and helpers."""
