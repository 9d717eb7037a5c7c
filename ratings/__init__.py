"""The data format: the canonical ratings CSV layout, its row parsing, the side tables, the
curated schema (ratings/schema/), and the importers that write the layout. The floor every other
package builds on; it imports nothing of ours above it."""
