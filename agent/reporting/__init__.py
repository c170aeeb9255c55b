"""Insights and reports: the terminal table, Markdown, JSON and a self-contained HTML page."""
