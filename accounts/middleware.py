from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from accounts.audit import request_context


class AuditContextMiddleware:
    """Changes made while serving a request are attributed to its user, API token and address.

    DRF authenticates inside the view and copies the user and the token onto
    this same request, so token-authenticated API calls are attributed too.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with request_context(request):
            return self.get_response(request)
