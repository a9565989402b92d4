from .spectral_vis_hook import SpectralReconstructionHook, psnr_curve, reconstruction_grid

__all__ = ['SpectralReconstructionHook', 'reconstruction_grid', 'psnr_curve']
