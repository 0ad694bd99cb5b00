"""The REST API under /api/v1/ (Django REST framework; OpenAPI schema by drf-spectacular):
tokens and authentication (tokens.py, auth.py), permissions and rate limits
(permissions.py), problem documents (problems.py), idempotency (idempotency.py), the views
(views.py). docs/api.md."""
