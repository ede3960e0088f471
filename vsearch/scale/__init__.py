"""Past one machine: Ray for decoding and encoding (``ray_pipeline``), Parquet shards of
embeddings for clusters that cannot reach the store (``shards``)."""
