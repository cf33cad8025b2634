"""Software-defined assets: landing (external), raw, staging, warehouse, marts."""
