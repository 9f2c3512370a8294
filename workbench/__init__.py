"""Confidential Workbench: attested Jupyter kernels for sealed healthcare data and models."""

__version__ = "0.1.0"
