"""One module per supported file format; `support.ingest.parsers.parse` dispatches."""
