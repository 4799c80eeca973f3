"""The phone demo: a PWA (web/) that classifies text on the device with an export's
.tflite and LiteRT.js, and the small web server that hands it out (`kbert demo`).

The page, its icons and the LiteRT.js runtime ship inside the package, so an
installed wheel serves the demo with no repository checkout and no npm.
"""

from kbert.demo.server import DEFAULT_HOST, DEFAULT_PORT, demo_urls, make_server

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "demo_urls", "make_server"]
