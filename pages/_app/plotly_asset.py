"""Where the design-space map's plotly.js is (pages/assets) and the address app.py serves it at.

Kept apart from pages/_app/live_plot.py so app.py can declare the route without importing plotly.
"""

from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets"
PLOTLY_FILE = ASSETS / "plotly-map.min.js"
#: The plotly.js version in the address: a new build is a new address, so browsers may cache it for good.
PLOTLY_ROUTE = f"/_doe/plotly-map-{(ASSETS / 'plotly-map.version').read_text(encoding='utf-8').strip()}.min.js"
