"""Retriever: finds the chunks a principal may read that best answer a request."""
