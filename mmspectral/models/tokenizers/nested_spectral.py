"""SpectralAR's nested spectral tokenizer: :class:`TiTokTokenizer` with the method's defaults (TOKENIZERS).

The switches that separate it from the TiTok baseline (the rows of the paper's Table 4) are listed in
:mod:`mmspectral.models.tokenizers.titok`.
"""
from typing import Optional, Union

from mmspectral.registry import TOKENIZERS
from ..masks import BaseAttnMask
from .titok import TiTokTokenizer


@TOKENIZERS.register_module()
class NestedSpectralTokenizer(TiTokTokenizer):
    """SpectralAR's nested spectral tokenizer (paper section 3.2, Algorithm 1).

    The same network as :class:`TiTokTokenizer` with SpectralAR's defaults: ``SpectralCausalMask`` in encoder
    and decoder, the eq. 9 schedule, spectral supervision, and a prefix length drawn uniformly per sample.
    Every argument of TiTokTokenizer is accepted, so each ablation of Table 4 is one changed argument.
    """

    default_freq_schedule = dict(type='NonUniformFreqSchedule')

    def __init__(self, attn_mask: Union[dict, BaseAttnMask, None] = None,
                 freq_schedule: Optional[dict] = None, spectral_supervision: bool = True,
                 prefix_sampling: Optional[dict] = None, **kwargs) -> None:
        super().__init__(
            attn_mask=attn_mask if attn_mask is not None else dict(type='SpectralCausalMask'),
            freq_schedule=freq_schedule if freq_schedule is not None else dict(self.default_freq_schedule),
            spectral_supervision=spectral_supervision,
            prefix_sampling=prefix_sampling if prefix_sampling is not None else dict(distribution='uniform'),
            **kwargs)
