"""Getting ratings into the canonical CSV layout the pipeline reads."""
