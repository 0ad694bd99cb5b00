from django.urls import URLPattern

# The chat consumer (/ws/chat/) is added by the live-chat work.
websocket_urlpatterns: list[URLPattern] = []
