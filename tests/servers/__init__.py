"""Small servers the end-to-end tests start as separate processes."""
