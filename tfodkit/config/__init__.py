"""pipeline.config: schema, loading, validation, overrides and templates."""
