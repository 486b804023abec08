"""Sổ tay feedback: members' comments, reports, proposals, petitions and questions."""
