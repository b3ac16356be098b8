"""Device drivers: LuxOS/CGMiner RPC for ASICs (and, beside it, the GPU drivers)."""
