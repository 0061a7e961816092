"""The core: the use cases every door calls (the ``Memory`` façade) and what they compose."""
