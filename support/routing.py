from django.urls import path

from . import agent_consumers, consumers

websocket_urlpatterns = [
    path("ws/chat/", consumers.ChatConsumer.as_asgi()),
    path("ws/agent/", agent_consumers.AgentConsumer.as_asgi()),
]
