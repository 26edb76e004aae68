"""Everything that knows kie.ai: products, payload parsing, signatures, failures, the API client."""
