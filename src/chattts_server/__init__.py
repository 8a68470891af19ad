"""chattts-server: serve the ChatTTS speech model over HTTP, and call it from other services.

Layers (dependencies point one way): ``server`` → ``engine`` / ``audio``; ``client`` depends on
neither and imports no torch.
"""

__version__ = "0.1.0"
