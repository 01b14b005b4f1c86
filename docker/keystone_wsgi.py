"""WSGI entry point for Keystone under gunicorn.

Keystone's WSGI loader hands ``sys.argv`` to oslo.config, which then parses
gunicorn's own command line and every worker dies with "unrecognized
arguments".  Reset ``sys.argv`` to the program name *before* keystone is
imported, then expose ``application``.

Usage (inside the kgt-lab image, where this file is /docker/keystone_wsgi.py):

    OS_KEYSTONE_CONFIG_DIR=/etc/keystone /opt/keystone/bin/gunicorn \
        --chdir /docker -b ADDR:5000 -w 2 keystone_wsgi:application
"""

import sys

sys.argv = sys.argv[:1] or ["keystone-wsgi"]

from keystone.wsgi.api import application  # noqa: E402

__all__ = ["application"]
