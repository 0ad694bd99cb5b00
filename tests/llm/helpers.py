"""Prompt helpers shared by the generation tests."""

from __future__ import annotations

from support.llm import ChatModel

SYSTEM_PROMPT = (
    "You are the support assistant of Acme Routers. Answer in one or two sentences, "
    "using only the facts in the user's message."
)
FACTS = (
    "To reset the router, hold the button on its back for 10 seconds. "
    "The warranty lasts two years from the date of purchase. "
    "Support is open Monday to Friday, 9:00 to 17:00."
)


def chat_ids(model: ChatModel, question: str, facts: str = FACTS) -> list[int]:
    user = f"Facts: {facts}\nQuestion: {question}" if facts else question
    prompt = model.render_chat(
        [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]
    )
    return model.tokenize(prompt)
