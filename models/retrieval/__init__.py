"""How `recommend` ranks: the history (EASE) head, and the TF ops that turn scores into top-K
lists with exclusions and nearest neighbours."""
