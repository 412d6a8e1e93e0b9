"""raydata_agent: training runs on Ray that choose their own data, epoch by epoch."""

__version__ = "0.1.0"
