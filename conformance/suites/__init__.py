"""The checks of each spec: one pytest module per spec (`crawl-client` -> `crawl_client.py`)."""
