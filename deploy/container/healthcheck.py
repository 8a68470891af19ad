#!/usr/bin/env python3
"""The image's HEALTHCHECK: exit 0 when the server in this container answers ``/readyz`` with 200
(model loaded and warmed up), 1 otherwise (not listening yet, loading, failed). Standard library
only: the image has no curl.

Speaks HTTPS when ``CHATTTS_SERVER_TLS_CERT`` is set (the certificate is not verified: it is our
own server on loopback); a server that requires client certificates (mTLS) refuses it, so
check such a server from outside."""

from __future__ import annotations

import os
import ssl
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("CHATTTS_SERVER_PORT", "9700")
    tls = bool(os.environ.get("CHATTTS_SERVER_TLS_CERT"))
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/readyz"
    context = ssl._create_unverified_context() if tls else None
    try:
        with urllib.request.urlopen(url, timeout=4, context=context) as response:
            body = response.read(500).decode(errors="replace")
            print(f"ready: {body}")
            return 0
    except urllib.error.HTTPError as exc:
        print(f"not ready: {exc.code} {exc.read(500).decode(errors='replace')}")
    except OSError as exc:
        print(f"not answering on {url}: {exc}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
