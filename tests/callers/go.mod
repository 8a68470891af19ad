module chattts-server/tests/callers

go 1.23
