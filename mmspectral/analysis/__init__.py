"""Measurements on images and token sequences: the causality study of section 4.2 (:mod:`.causality`), the
Table 4 experiment (:mod:`.table4`), speed (:mod:`.speed`)."""
from .causality import (best_single_r2, encode_learned_tokens, frame_maps, heldout_r2, load_images,
                        luminance_elements, pairwise_r2, raster_tokens, scale_tokens, sequence_r2,
                        spectral_tokens, split_indices)

__all__ = ['load_images', 'raster_tokens', 'scale_tokens', 'spectral_tokens', 'split_indices', 'heldout_r2',
           'sequence_r2', 'pairwise_r2', 'luminance_elements', 'best_single_r2', 'frame_maps',
           'encode_learned_tokens']
