"""gunicorn reads ./gunicorn.conf.py when no `-c` is given: a plain `gunicorn config.wsgi` from the checkout (the
benches, a quick local run) gets the image's settings and hooks, config/gunicorn.py, rather than gunicorn's
defaults (one sync process that closes every connection after one request, no metrics folder, no read limits).
Options on the command line still win over these."""

import os
import sys

# gunicorn reads this file before it puts its working directory on sys.path; `gunicorn` (the script) needs it.
_here = os.path.dirname(os.path.abspath(__file__))
if _here not in sys.path:
    sys.path.insert(0, _here)

from config.gunicorn import *  # noqa: E402, F403
