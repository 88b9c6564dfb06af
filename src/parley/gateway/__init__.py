"""The AI gateway: OpenAI- and Anthropic-compatible inference over many providers."""
