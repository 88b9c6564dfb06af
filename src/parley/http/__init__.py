"""HTTP edges shared by every router: errors, middleware and request dependencies."""
