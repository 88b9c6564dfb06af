"""One module per wire format; each translates to and from the OpenAI chat shape."""
