"""The Analyze screen: a question, a generated or pasted reasoning, its steps."""
