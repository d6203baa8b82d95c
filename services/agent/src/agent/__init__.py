"""Agent: drafts an answer grounded in retrieved chunks, or proposes an action for approval."""
