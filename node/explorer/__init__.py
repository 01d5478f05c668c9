"""The block explorer: server-rendered HTML pages of the chain, served by every node at ``/``.

``add_explorer`` mounts the pages (``routes``) and their assets (``static/``)
on the node's FastAPI app.  The data each page shows comes from pure
functions of the node's store and mempool (``pages``); what a search box
query names is decided in ``search``; number, time and hash formats for the
templates are in ``formats``.  The pages work without JavaScript;
``static/live.js`` only adds live updates from ``GET /v1/events``.
"""

from node.explorer.routes import add_explorer

__all__ = ["add_explorer"]
