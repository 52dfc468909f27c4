"""What the pages accept: one WTForms form per page, their fields and choices, and JSON bodies."""
