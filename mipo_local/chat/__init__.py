"""Talking to the personal model: the chat session and its conversations, the local HTTP server
(the OpenAI protocol), profiles and the active model of each."""
