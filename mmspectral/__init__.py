"""mmspectral: SpectralAR (spectral autoregressive visual generation) on MMEngine."""
from .version import __version__

__all__ = ['__version__']
