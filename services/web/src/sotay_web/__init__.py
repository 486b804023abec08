"""Sổ tay web front: the backend-for-frontend that signs people in and renders their pages."""
