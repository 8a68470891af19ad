"""Thin routers: parse, hand to the services on ``app.state``, return."""
