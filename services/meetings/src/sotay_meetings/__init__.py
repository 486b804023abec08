"""meetings: branch and committee meetings, from invitation to the report sent up."""
