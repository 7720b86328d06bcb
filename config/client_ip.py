"""The client's address for the admin login lockout (django-axes' AXES_CLIENT_IP_CALLABLE).

Without a proxy in front (TRUSTED_PROXY_COUNT = 0) it is REMOTE_ADDR, whatever X-Forwarded-For says. Behind N
proxies that each append the address they received the request from (nginx's $proxy_add_x_forwarded_for, as
deploy/nginx.conf does), it is the N-th address from the right of X-Forwarded-For: the one the outermost proxy saw.
Anything further left was written by the client and is ignored. Behind nginx, REMOTE_ADDR is nginx itself, and
counting it would lock every user out together.
"""

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    count = settings.TRUSTED_PROXY_COUNT
    if count:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= count:
            return forwarded[-count]
    return request.META.get("REMOTE_ADDR")
