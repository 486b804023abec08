"""Sổ tay content service: news and party documents, editorial workflow, the member's library."""
