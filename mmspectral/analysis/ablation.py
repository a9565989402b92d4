"""What the tiny Table 4 ablation reports beside its figures (tools/analysis/ablation_row_metrics.py)."""

__all__ = ['label_targets']


def label_targets(result: dict, tokenizer) -> dict:
    """Name what the tokenizer's prefixes were trained towards, next to the low-pass images the progression
    compares them with (a TiTok-tokens row has a schedule but never trained towards its low-pass images)."""
    lowpass = bool(getattr(tokenizer, 'spectral_supervision', False))
    result['prefix_targets'] = 'lowpass' if lowpass else 'full_image'
    progression = result.get('progression') or {}
    if 'lowpass_targets' in progression and not lowpass:
        progression['lowpass_targets_note'] = (
            'reference only: this tokenizer trained every prefix towards the whole image '
            '(spectral_supervision=False), never towards these low-pass images')
    return result
