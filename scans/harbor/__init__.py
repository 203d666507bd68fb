"""Harbor: its PUSH_ARTIFACT webhooks, and the Scanner Adapter API v1.2 so that Harbor can use Vigil as its scanner.

- webhook.py        Harbor's Default and CloudEvents payloads -> push events; the webhook view
- adapter.py        the adapter's logic: metadata, accepting scan requests, finding their reports
- reports.py        Vigil's findings and inventories as Harbor's report documents (no Django)
- authorization.py  the registry authorization a scan request carries: parsed, sealed, never stored
- auth.py, serializers.py, views.py, urls.py   the HTTP side of the adapter
"""
