"""Onboarding a merchant who already sells: spreadsheets of the catalog in and out."""
