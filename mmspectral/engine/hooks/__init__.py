from .checkpoint_hook import CheckpointHook
from .nonfinite_loss_hook import NonFiniteLossError, NonFiniteLossHook
from .spectral_vis_hook import SpectralReconstructionHook, psnr_curve, reconstruction_grid

__all__ = ['SpectralReconstructionHook', 'reconstruction_grid', 'psnr_curve', 'CheckpointHook',
           'NonFiniteLossHook', 'NonFiniteLossError']
