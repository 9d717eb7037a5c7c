"""AtomicPusher: versions published whole, never the same model twice, deploy files refreshed."""
