"""Data layer: image I/O, manifests, NIH curation, lung-mask datasets, the synthetic benchmark."""
