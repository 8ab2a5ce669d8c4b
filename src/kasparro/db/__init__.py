"""Storage: engine and session factory, typed models, repository functions, migrations."""
