"""Framework integrations (Lightning, transformers); each imports only the public core API."""
