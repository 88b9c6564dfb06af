"""Wire-shape translation: one module per vendor and direction, `common` for what they share.

Inside Parley a chat request and its answer have the OpenAI Chat Completions shape; an
upstream adapter translates them to and from a vendor's API, and a compatibility layer serves
a vendor's API from that shape. A request that cannot be expressed in the target shape raises
ValueError; callers answer it with a 400 `invalid_request_error`.
"""
