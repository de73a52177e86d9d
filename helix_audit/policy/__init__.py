"""Rules (the documented tables), the site profile, roles, matching, findings and coverage."""
