"""org-tree: the party organisation tree and its history."""
