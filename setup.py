# All metadata lives in setup.cfg; this file only lets old pip versions do `pip install -e .`.
from setuptools import setup

setup()
