"""Plain tensor maths of SpectralAR: the DCT, low-pass targets and token-frequency schedules (no MMEngine)."""
from .dct import axis_cutoffs, dct2, dct_matrix, idct2, lowpass, lowpass_projector
from .schedules import (BaseFreqSchedule, NonUniformFreqSchedule, PiecewiseLinearFreqSchedule,
                        UniformFreqSchedule, build_freq_schedule)
from .subimages import SUBIMAGE_MODES, band_energy_above, reassemble_subimages, split_subimages, upsample

__all__ = ['dct2', 'idct2', 'dct_matrix', 'lowpass', 'lowpass_projector', 'axis_cutoffs', 'BaseFreqSchedule',
           'UniformFreqSchedule', 'NonUniformFreqSchedule', 'PiecewiseLinearFreqSchedule',
           'build_freq_schedule', 'SUBIMAGE_MODES', 'split_subimages', 'reassemble_subimages', 'upsample',
           'band_energy_above']
