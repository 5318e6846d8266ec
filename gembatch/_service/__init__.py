"""The only package that imports google.genai: calls, retries, error translation, conversions."""
