"""Model backends: `gemini` (google-genai), `openai` (any OpenAI-compatible server) and `echo` (offline)."""
