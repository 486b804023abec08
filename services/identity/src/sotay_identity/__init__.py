"""identity: party members, their accounts, roles and personal records."""
