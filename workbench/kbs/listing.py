"""How the admin API pages a listing of approval requests: sizes and the count headers.

Shared by the broker and the admin client without importing the store (the CLI keeps its
heavy imports inside the handlers). The body stays a plain list; counts travel as headers.
"""

from __future__ import annotations

DEFAULT_PAGE, MAX_PAGE = 200, 1000
TOTAL_HEADER = "X-Total-Count"   # requests in the asked state
MORE_HEADER = "X-More-Count"     # of them older than the page's last
