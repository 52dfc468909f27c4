"""What the pages show: view models and chart geometry, built from the library's results."""
