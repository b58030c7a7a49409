"""Model backends: `gemini` (google-genai) and `echo` (offline)."""
