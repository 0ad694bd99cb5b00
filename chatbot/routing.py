from support.routing import websocket_urlpatterns as support_patterns

websocket_urlpatterns = [*support_patterns]
